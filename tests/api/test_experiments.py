"""A/B experiments through the API: assignment, what each variant is served on every path,
the log, stop and promote (persisted across a restart), and 4xx for bad input."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cinerec.api.main import create_app
from cinerec.domain import Event, EventKind, Experiment, Movie, Variant
from cinerec.engine import DEFAULT_SETTING, RankingSetting
from cinerec.experiments import assign, bucket
from cinerec.service import RecService

from .conftest import ADMIN, api_settings

EXPERIMENTS = "/api/v1/admin/experiments"
#: ranker (with exploration) against popularity alone
RANKER_VS_POPULAR = {
    "name": "ranker vs popular",
    "variants": [
        {"name": "ranker", "share": 0.5},
        {"name": "popular", "share": 0.5, "source": "popular", "explore": False},
    ],
}
N_POPULAR = 30


def popular_catalogue(svc: RecService) -> list[str]:
    """60 movies; m0 … m29 liked by 30 … 1 crowd users (a strict popularity order), the
    rest never liked. Returns the ids in popularity order."""
    svc.add_movies([Movie(f"m{i}", f"Movie {i}", genres=["Drama"]) for i in range(60)])
    svc.record_events(
        [
            Event(f"crowd{j}", f"m{i}", EventKind.LIKE)
            for i in range(N_POPULAR)
            for j in range(N_POPULAR - i)
        ]
    )
    return [f"m{i}" for i in range(N_POPULAR)]


def users_of(exp: dict, variant: str, n: int, prefix: str = "new") -> list[str]:
    """The first ``n`` user ids ``{prefix}{i}`` the experiment puts in ``variant``."""
    e = Experiment(exp["id"], exp["name"], exp["salt"], [Variant(**v) for v in exp["variants"]])
    out = [f"{prefix}{i}" for i in range(1000) if assign(e, f"{prefix}{i}").name == variant]
    return out[:n]


def test_assignment_is_deterministic_and_splits_by_shares() -> None:
    variants = [Variant("a", 0.2), Variant("b", 0.3, "popular"), Variant("c", 0.5, None, False)]
    exp = Experiment("e", "split", "salt-1", variants)
    ids = [f"user-{i}" for i in range(20_000)]
    got = [assign(exp, u).name for u in ids]
    assert got == [assign(exp, u).name for u in ids]  # the same every time
    counts = Counter(got)
    for v in variants:
        expected = v.share * len(ids)
        sd = (len(ids) * v.share * (1 - v.share)) ** 0.5
        assert abs(counts[v.name] - expected) < 4 * sd, (v.name, counts)
    # Another salt is another, independent split.
    other = Experiment("f", "split", "salt-2", variants)
    moved = sum(assign(other, u).name != g for u, g in zip(ids, got, strict=True))
    assert moved > 0.4 * len(ids)
    assert 0.0 <= bucket("salt-1", "x") < 1.0


def test_each_variant_is_served_its_setting_on_every_path(
    client: TestClient, svc: RecService
) -> None:
    order = popular_catalogue(svc)
    r = client.post(EXPERIMENTS, json=RANKER_VS_POPULAR)
    assert r.status_code == 201, r.text
    exp = r.json()
    assert r.headers["location"] == f"{EXPERIMENTS}/{exp['id']}"
    pop_user, pop_user2 = users_of(exp, "popular", 2)
    ranker_user = users_of(exp, "ranker", 1)[0]

    # A newcomer of the popular variant: popularity's order, on each path in turn (never
    # repeating a movie), every slot labelled popular.
    first = client.get(f"/recs/{pop_user}").json()["item_ids"]
    assert first == order[:10]
    b = client.get(f"/api/recommend/v1/recommendations/{pop_user}").json()
    assert b["recommendations"] == order[10:20] and b["source"] == "popular"
    ours = client.get(f"/api/v1/recommendations/{pop_user}").json()
    assert [i["movie_id"] for i in ours["items"]] == order[20:30]
    assert {i["source"] for i in ours["items"]} == {"popular"}

    # The read path stays lock-free: another newcomer of the variant is served from the
    # variant's shared plan without the engine.
    fast = svc.try_recommend(pop_user2)
    assert fast is not None and [i.movie_id for i in fast.items] == order[:10]
    assert fast.variant == "popular"

    # A newcomer of the ranker variant gets the default list (exploration slots included),
    # not the popular variant's plan.
    default = client.get(f"/api/v1/recommendations/{ranker_user}").json()
    assert {i["source"] for i in default["items"]} != {"popular"}
    assert "explore" in {i["source"] for i in default["items"]}

    # A user with a history in the popular variant: popularity's order minus what they saw.
    liker = users_of(exp, "popular", 1, prefix="liker")[0]
    svc.record_events([Event(liker, "m0", EventKind.LIKE), Event(liker, "m3", EventKind.LIKE)])
    got = client.get(f"/recs/{liker}").json()["item_ids"]
    assert got == [m for m in order if m not in ("m0", "m3")][:10]

    # A source forced by the caller wins, and that list is outside the experiment.
    forced = client.get(f"/api/v1/recommendations/{pop_user}?source=newest").json()
    assert {i["source"] for i in forced["items"]} <= {"newest", "explore"}

    svc.rec_log.flush()
    logged = {e.session_id: e for e in svc.store.iter_rec_log()}
    assert logged[b["session_id"]].experiment == exp["id"]
    assert logged[b["session_id"]].variant == "popular"
    assert logged[default["session_id"]].variant == "ranker"
    assert logged[forced["session_id"]].experiment is None
    in_exp = list(svc.store.iter_experiment_log(exp["id"]))
    assert {e.variant for e in in_exp} == {"popular", "ranker"}
    assert all(e.user_id in (pop_user, pop_user2, ranker_user, liker) for e in in_exp)


def test_stop_and_promote(client: TestClient, svc: RecService) -> None:
    order = popular_catalogue(svc)
    exp = client.post(EXPERIMENTS, json=RANKER_VS_POPULAR).json()
    ranker_user = users_of(exp, "ranker", 1)[0]
    # A user with a plan of their own, made for the ranker variant on their like.
    liker = users_of(exp, "ranker", 1, prefix="liker")[0]
    svc.record_events([Event(liker, "m45", EventKind.LIKE)])  # outside the top 30
    seen = set(client.get(f"/recs/{liker}").json()["item_ids"])
    r = client.post(f"{EXPERIMENTS}/{exp['id']}/stop")
    assert r.status_code == 200 and r.json()["status"] == "stopped"
    assert svc.experiments.assign(ranker_user) is None
    assert client.post(f"{EXPERIMENTS}/{exp['id']}/stop").status_code == 409
    # Promoting popular (after the stop) makes it everyone's list, outside any experiment.
    r = client.post(f"{EXPERIMENTS}/{exp['id']}/promote", json={"variant": "popular"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["winner"]) == ("promoted", "popular")
    assert client.get(f"/recs/{ranker_user}").json()["item_ids"] == order[:10]
    # The liker's plan was made for the ranker: it is made again for the promoted setting.
    got = client.get(f"/recs/{liker}").json()["item_ids"]
    assert got == [m for m in order if m not in seen][:10]
    listed = client.get(EXPERIMENTS).json()
    assert [e["id"] for e in listed] == [exp["id"]]
    # A new experiment may start now.
    assert client.post(EXPERIMENTS, json=RANKER_VS_POPULAR).status_code == 201


def test_experiments_and_the_promoted_setting_survive_a_restart(tmp_path: Path) -> None:
    settings = api_settings(database_url=f"sqlite:///{tmp_path / 'ab.db'}")
    svc = RecService(settings)
    svc.load()
    exp = svc.create_experiment(
        "restart", [Variant("ranker", 0.5), Variant("top", 0.5, "top_rated", False)]
    )
    before = {u: svc.experiments.assign(u) for u in ("a", "b", "c", "d")}
    svc.close()
    svc = RecService(settings)
    svc.load()
    assert svc.experiments.running is not None and svc.experiments.running.id == exp.id
    assert {u: svc.experiments.assign(u) for u in before} == before
    svc.promote_variant(exp.id, "top")
    svc.close()
    svc = RecService(settings)
    svc.load()
    assert svc.experiments.running is None
    assert svc.experiments.default == RankingSetting("top_rated", False)
    assert svc.engine.setting_for("anyone") == RankingSetting("top_rated", False)
    # A later experiment's promotion supersedes it; promoting the first one's variant again
    # (an older experiment) is what a restart finds, whatever the creation times.
    later = svc.create_experiment("later", [Variant("a", 0.5), Variant("pop", 0.5, "popular")])
    svc.promote_variant(later.id, "pop")
    assert svc.experiment(exp.id).status == "superseded"
    svc.promote_variant(exp.id, "top")
    svc.close()
    svc = RecService(settings)
    svc.load()
    assert svc.experiment(later.id).status == "superseded"
    assert svc.experiments.default == RankingSetting("top_rated", False)
    svc.cleanup()  # a wipe forgets experiments too
    assert svc.experiments.default == DEFAULT_SETTING
    svc.close()


BAD = [
    (
        {"name": "x", "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}]},
        422,
        "shares must sum to 1",
    ),
    (
        {
            "name": "x",
            "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5, "source": "no"}],
        },
        422,
        "unknown source 'no'",
    ),
    (
        {"name": "x", "variants": [{"name": "a", "share": 0.5}, {"name": "a", "share": 0.5}]},
        422,
        "unique",
    ),
    ({"name": "x", "variants": [{"name": "a", "share": 1.0}]}, 422, "variants"),
    (
        {"name": "x", "variants": [{"name": "a", "share": 0}, {"name": "b", "share": 1}]},
        422,
        "greater than 0",
    ),
    (
        {
            "name": "x",
            "metric": "clicks",
            "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}],
        },
        422,
        "metric",
    ),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD)
def test_bad_experiments_get_a_4xx_that_says_what_to_fix(
    client: TestClient, body: dict, status: int, message: str
) -> None:
    r = client.post(EXPERIMENTS, json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert client.get(EXPERIMENTS).json() == []


def test_conflicts_unknown_ids_and_variants(client: TestClient) -> None:
    exp = client.post(EXPERIMENTS, json=RANKER_VS_POPULAR).json()
    r = client.post(EXPERIMENTS, json=RANKER_VS_POPULAR)
    assert r.status_code == 409 and "stop or promote it first" in r.json()["detail"]
    assert client.get(f"{EXPERIMENTS}/nope").status_code == 404
    assert client.post(f"{EXPERIMENTS}/nope/stop").status_code == 404
    r = client.post(f"{EXPERIMENTS}/{exp['id']}/promote", json={"variant": "other"})
    assert r.status_code == 422 and "its variants: ranker, popular" in r.json()["detail"]


def test_experiments_need_the_admin_token(svc: RecService) -> None:
    with TestClient(create_app(svc)) as anonymous:
        assert anonymous.post(EXPERIMENTS, json=RANKER_VS_POPULAR).status_code == 401
        assert anonymous.get(EXPERIMENTS).status_code == 401
    with TestClient(create_app(svc), headers=ADMIN) as admin:
        assert admin.get(EXPERIMENTS).status_code == 200
