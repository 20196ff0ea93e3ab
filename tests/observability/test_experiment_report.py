"""An experiment's report on small hand-made logs (known answers), and its series on
``/metrics``."""

from __future__ import annotations

import math
from pathlib import Path

from fastapi.testclient import TestClient
from tests.observability.conftest import scrape, value

from cinerec.domain import Event, EventKind, Experiment, RecLogEntry, Variant
from cinerec.experiments import Experiments
from cinerec.observability.experiments import Z95, Z_POWER
from cinerec.service import RecService
from cinerec.store import Store, open_store

T0 = 1_000_000.0


def _list(store: Store, session: str, user: str, variant: str, ts: float, liked: list[int]) -> None:
    """Log a list of 10 movies ``{session}-0`` … and like the ones at ``liked`` 10 s later."""
    movies = [f"{session}-{i}" for i in range(10)]
    entry = RecLogEntry(session, user, movies, ["x"] * 10, "x", None, ts, "e1", variant)
    store.log_recommendations([entry])
    store.add_events([Event(user, movies[i], EventKind.LIKE, ts=ts + 10) for i in liked])


def _experiments(tmp_path: Path) -> tuple[Store, Experiments]:
    store = open_store(f"sqlite:///{tmp_path / 'ab.db'}")
    exp = Experiment("e1", "hand-made", "s", [Variant("A", 0.5), Variant("B", 0.5, "popular")])
    exp.created_at = T0 - 1
    store.save_experiment(exp)
    return store, Experiments(store, attribution_s=3600)


def test_report_arithmetic_on_a_hand_made_log(tmp_path: Path) -> None:
    store, ex = _experiments(tmp_path)
    _list(store, "s1", "a1", "A", T0, [0, 1])  # P@3 2/3, nDCG 1
    _list(store, "s2", "a2", "A", T0, [0])  # P@3 1/3, nDCG 1
    _list(store, "s3", "a2", "A", T0 + 10_000, [2])  # P@3 1/3, nDCG 1/log2(4) = 0.5
    _list(store, "s4", "b1", "B", T0, [])
    _list(store, "s5", "b2", "B", T0, [5])  # P@3 0, nDCG 1/log2(7)
    rep = ex.report("e1")
    a, b = rep["variants"]
    assert (a["users"], a["lists"], a["impressions"], a["likes"]) == (2, 3, 30, 4)
    assert (b["users"], b["lists"], b["impressions"], b["likes"]) == (2, 2, 20, 1)

    # Like rate: per-user sums (a1: 2 of 10, a2: 2 of 20) -> 4/30; delta-method SE with
    # users as clusters: sqrt(N/(N-1) * sum (y - R n)^2) / sum n.
    r_a = 4 / 30
    se_a = math.sqrt(2 * ((2 - r_a * 10) ** 2 + (2 - r_a * 20) ** 2)) / 30
    assert math.isclose(se_a, 0.044444, abs_tol=1e-6)
    assert a["like_rate"]["value"] == round(r_a, 6)
    assert a["like_rate"]["ci95"] == [round(r_a - Z95 * se_a, 6), round(r_a + Z95 * se_a, 6)]
    r_b, se_b = 1 / 20, math.sqrt(2 * (0.5**2 + 0.5**2)) / 20
    assert b["like_rate"]["value"] == r_b
    # P@3 and nDCG@10 are means over lists.
    assert a["precision_at_3"]["value"] == round((2 / 3 + 1 / 3 + 1 / 3) / 3, 6)
    assert a["ndcg_at_10"]["value"] == round((1 + 1 + 0.5) / 3, 6)
    assert b["ndcg_at_10"]["value"] == round((1 / math.log2(7)) / 2, 6)
    assert b["precision_at_3"]["value"] == 0.0

    # A minus B, unpooled SE; the interval holds 0: not significant, with the sample needed
    # for 80 % power at the observed difference.
    (diff,) = rep["differences"]
    d = r_a - r_b
    se_d = math.sqrt(se_a**2 + se_b**2)
    assert (diff["variant"], diff["minus"]) == ("A", "B")
    assert diff["like_rate"]["value"] == round(d, 6)
    assert diff["like_rate"]["ci95"] == [round(d - Z95 * se_d, 6), round(d + Z95 * se_d, 6)]
    verdict = rep["verdict"]
    assert verdict["winner"] is None and not verdict["significant"]
    needed = (Z95 + Z_POWER) ** 2 * (2 * se_a**2 / 0.5 + 2 * se_b**2 / 0.5) / d**2
    assert verdict["users_needed"] == math.ceil(needed)
    assert verdict["more_users_needed"] == math.ceil(needed) - 4
    assert "not yet significant" in verdict["message"]
    store.close()


def test_a_clear_difference_names_the_winner(tmp_path: Path) -> None:
    store, ex = _experiments(tmp_path)
    for u in range(20):
        # A: 4 or 5 likes per list of 10; B: 0 or 1.
        _list(store, f"a{u}", f"ua{u}", "A", T0, list(range(4 + u % 2)))
        _list(store, f"b{u}", f"ub{u}", "B", T0, list(range(u % 2)))
    rep = ex.report("e1")
    assert rep["verdict"]["winner"] == "A" and rep["verdict"]["significant"]
    lo, hi = rep["differences"][0]["like_rate"]["ci95"]
    assert 0 < lo < 0.4 < hi
    store.close()


def test_a_variant_without_lists_has_no_verdict(tmp_path: Path) -> None:
    store, ex = _experiments(tmp_path)
    _list(store, "s1", "a1", "A", T0, [0])
    rep = ex.report("e1")
    assert rep["variants"][1]["like_rate"] == {"value": None, "ci95": None}
    assert rep["verdict"]["winner"] is None
    assert "no list yet" in rep["verdict"]["message"]
    store.close()


def test_metrics_carry_per_variant_series(client: TestClient, svc: RecService) -> None:
    r = client.post("/add_items", json={"item_ids": [f"m{i}" for i in range(40)]})
    assert r.status_code == 200
    exp = svc.create_experiment(
        "metrics", [Variant("ranker", 0.5), Variant("popular", 0.5, "popular", False)]
    )
    for u in range(12):
        items = client.get(f"/recs/user-{u}").json()["item_ids"]
        body = {"user_id": f"user-{u}", "item_ids": items[:1], "actions": ["like"]}
        assert client.post("/interact", json=body).status_code == 200
    svc.experiment_report(exp.id)  # what a scrape would start in the background
    samples = scrape(client)
    rep = svc.experiments.last_report
    assert rep is not None
    for v in rep["variants"]:
        labels = {"experiment": exp.id, "variant": v["name"]}
        assert value(samples, "cinerec_experiment_impressions_total", **labels) == v["impressions"]
        assert value(samples, "cinerec_experiment_likes_total", **labels) == v["likes"]
    total = sum(
        value(samples, "cinerec_experiment_impressions_total", experiment=exp.id, variant=n)
        for n in ("ranker", "popular")
    )
    assert total == 120
    assert (
        sum(
            value(samples, "cinerec_experiment_likes_total", experiment=exp.id, variant=n)
            for n in ("ranker", "popular")
        )
        == 12
    )
