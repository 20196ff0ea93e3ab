"""The closed-loop simulator: scoring rules, reference policies, and whole runs against the
service in process and over real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cinerec.simulation import (
    REFERENCE_POLICIES,
    Behaviour,
    HttpTarget,
    PolicyTarget,
    ServiceTarget,
    SimUser,
    World,
    compare,
    grader_points,
    in_process_service,
    load_world,
    run,
    simulate,
    synthetic_world,
)
from cinerec.simulation.policies import (
    ORACLE_POLICIES,
    CourseBaselinePolicy,
    GenreLikedPolicy,
    MostPopularPolicy,
    OraclePopularPolicy,
    OracleUserKnnPolicy,
)
from cinerec.simulation.runner import genre_diversity, score_answer
from e2e.test_http import ADMIN_TOKEN, start_server

DEMO = Path(__file__).resolve().parents[2] / "src" / "cinerec" / "demo_data" / "ml-latest-small"
FAST = Behaviour(requests=3, concurrency=5, time_scale=0.0)
RANKER_VS_POPULAR = {
    "name": "sim",
    "salt": "sim-salt",
    "variants": [
        {"name": "ranker", "share": 0.5, "source": None, "explore": True},
        {"name": "popular", "share": 0.5, "source": "popular", "explore": False},
    ],
}


def small_world(n_items: int = 60, n_users: int = 8) -> World:
    items = [f"m{i}" for i in range(n_items)]
    genres = {m: (("Drama",) if i % 2 else ("Comedy", "Romance")) for i, m in enumerate(items)}
    users = [SimUser(f"u{u}", frozenset(items[u : u + 15 : 3])) for u in range(n_users)]
    return World("small", items, genres, users)


# -- scoring -------------------------------------------------------------------------------
def test_a_relevant_movie_earns_credit_once() -> None:
    u = SimUser("u", frozenset({"a", "b", "c"}))
    items = ["a", "x", "b", *[f"y{i}" for i in range(7)]]
    precision, ndcg, hits = score_answer(u, items)
    assert precision == pytest.approx(0.2) and hits == ["a", "b"]
    # ideal: 3 relevant left -> hits at ranks 1..3
    ideal = 1 + 1 / 1.5849625 + 1 / 2
    assert ndcg == pytest.approx((1 + 1 / 2) / ideal)
    u.credited.update(hits)
    precision, ndcg, hits = score_answer(u, items)
    assert precision == 0.0 and ndcg == 0.0 and hits == []
    u.credited.add("c")
    assert score_answer(u, items)[1] is None  # nothing left to find: no nDCG


def test_genre_diversity_is_mean_pairwise_jaccard_distance() -> None:
    g = {"a": ("Drama",), "b": ("Drama",), "c": ("Comedy",), "d": ("Drama", "Comedy")}
    assert genre_diversity(["a", "b"], g) == 0.0
    assert genre_diversity(["a", "c"], g) == 1.0
    assert genre_diversity(["a", "d"], g) == pytest.approx(0.5)
    assert genre_diversity(["a", "b", "c"], g) == pytest.approx(2 / 3)


def test_grader_points_are_linear_between_floor_and_ceiling() -> None:
    s = {
        "precision@10": 0.085,
        "ndcg@10": 0.5,
        "diversity": 0.0,
        "coverage": 0.8,
        "latency_mean_ms": 440.0,
    }
    pts = grader_points(s)
    assert pts["precision@10"] == pytest.approx(0.5)
    assert pts["ndcg@10"] == 1.0 and pts["diversity"] == 0.0 and pts["coverage"] == 1.0
    assert pts["latency_mean_ms"] == pytest.approx(0.5)
    assert pts["total"] == pytest.approx(3.0)


def test_world_from_movielens_has_fresh_ids_and_hidden_tastes() -> None:
    a = load_world(DEMO, n_users=20, seed=1)
    b = load_world(DEMO, n_users=20, seed=1)
    assert len(a.users) == 20 and a.n_items == 9742
    assert not set(a.item_ids) & set(b.item_ids)  # new ids on every run
    assert all(u.relevant <= set(a.genres) and u.relevant for u in a.users)
    # the same users (by data set id) for the same seed
    assert [u.id.split("-", 1)[1] for u in a.users] == [u.id.split("-", 1)[1] for u in b.users]


# -- reference policies --------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REFERENCE_POLICIES))
def test_references_never_reshow_and_answer_k(name: str) -> None:
    world = small_world(n_items=40)
    policy = REFERENCE_POLICIES[name](seed=3)
    policy.reset(world)
    shown: list[str] = []
    for _ in range(4):
        shown += policy.recs("u", 10)
    assert len(shown) == len(set(shown)) == 40


def test_genre_liked_leans_to_the_genres_of_the_users_likes() -> None:
    items = [f"m{i}" for i in range(12)]
    genres = {m: (("Drama",) if i % 2 else ("Comedy",)) for i, m in enumerate(items)}
    policy = GenreLikedPolicy(seed=0)
    policy.reset(World("w", items, genres, []))
    for v in range(5):
        policy.interact(f"c{v}", ["m0"], ["like"])  # the most liked: a comedy
    for v in range(3):
        policy.interact(f"d{v}", ["m1"], ["like"])  # a drama, fewer likes
    policy.interact("me", ["m3", "m5", "m7"], ["like", "like", "like"])  # dramas
    assert policy.recs("newcomer", 2) == ["m0", "m1"]
    assert policy.recs("me", 2) == ["m1", "m0"]


def test_oracle_popular_lists_what_most_users_find_relevant() -> None:
    items = [f"m{i}" for i in range(30)]
    # m5 relevant to all four users, m9 to three, m2 to two, the rest to one or none
    lists = [{"m5", "m9", "m2", "m20"}, {"m5", "m9", "m2"}, {"m5", "m9", "m11"}, {"m5", "m13"}]
    users = [SimUser(f"u{u}", frozenset(r)) for u, r in enumerate(lists)]
    policy = OraclePopularPolicy(seed=0)
    policy.reset(World("w", items, {m: ("Drama",) for m in items}, users))
    assert policy.recs("newcomer", 10)[:3] == ["m5", "m9", "m2"]


def test_oracle_user_knn_reads_the_neighbours_answers_never_the_users_own() -> None:
    items = [f"m{i}" for i in range(40)]
    users = [
        SimUser("me", frozenset({"m1", "m2", "m30"})),  # m30: relevant to me alone
        SimUser("twin", frozenset({"m1", "m2", "m7"})),
        SimUser("other", frozenset({"m3", "m4", "m8"})),
    ]
    policy = OracleUserKnnPolicy(seed=0)
    policy.reset(World("w", items, {m: ("Drama",) for m in items}, users))
    policy.interact("me", ["m1"], ["like"])
    recs = policy.recs("me", 3)
    # the twin shares m1: its m2 and m7 come first; m30 is known only from my own list
    assert set(recs[:2]) == {"m2", "m7"} and "m30" not in recs


def test_oracles_are_flagged_and_beat_most_liked_on_a_skewed_population() -> None:
    assert {"oracle_popular", "oracle_popular_genres", "oracle_user_knn"} == ORACLE_POLICIES
    assert not any(REFERENCE_POLICIES[n].oracle for n in set(REFERENCE_POLICIES) - ORACLE_POLICIES)
    world = synthetic_world("skewed", n_users=200, seed=0, items=1500)
    results, _ = simulate(
        world, None, ["most_liked", "oracle_user_knn"], Behaviour(requests=6, time_scale=0)
    )
    liked, oracle = (r.summary()["ndcg@10"] for r in results)
    assert oracle > liked


def test_most_popular_and_course_baseline_follow_likes() -> None:
    world = small_world()
    pop, course = MostPopularPolicy(seed=0), CourseBaselinePolicy(seed=0)
    for p in (pop, course):
        p.reset(world)
        for v in range(5):
            p.interact(f"v{v}", ["m7", "m3"], ["like", "like"])
        p.interact("v9", ["m3"], ["like"])
    assert pop.recs("new", 10)[:2] == ["m3", "m7"]
    assert course.recs("new", 10)[:2] == ["m3", "m7"]


# -- whole runs ----------------------------------------------------------------------------
def test_run_against_the_service_in_process(tmp_path: Path) -> None:
    world = small_world()
    svc = in_process_service(f"sqlite:///{tmp_path / 'sim.db'}")
    try:
        result = asyncio.run(run(ServiceTarget(svc), world, FAST))
    finally:
        svc.close()
    s = result.summary()
    assert s["errors"] == 0 and s["answers"] == len(world.users) * FAST.requests
    assert 0 < s["coverage"] <= 1 and s["precision@10"] > 0
    # likes reached the service through the loop
    assert svc.engine.n_events > 0


def test_the_simulator_reports_per_variant_as_the_service_does(tmp_path: Path) -> None:
    world = small_world(n_items=200, n_users=30)
    svc = in_process_service(f"sqlite:///{tmp_path / 'sim.db'}")
    try:
        result = asyncio.run(run(ServiceTarget(svc), world, FAST, RANKER_VS_POPULAR))
    finally:
        svc.close()
    sim = result.by_variant()
    rep = result.experiment_report
    assert rep is not None and result.experiment is not None
    assert set(sim) == {"ranker", "popular"}
    assert sum(v["users"] for v in sim.values()) == len(world.users)
    for v in rep["variants"]:
        mine = sim[v["name"]]
        # Same users, same lists; the simulated users like exactly the relevant movies
        # they are shown, so the service's like rate is the simulator's precision@10 and
        # its P@3 the simulator's.
        assert (v["users"], v["lists"]) == (mine["users"], mine["answers"])
        assert v["like_rate"]["value"] == pytest.approx(mine["precision@10"], abs=1e-6)
        assert v["precision_at_3"]["value"] == pytest.approx(mine["precision@3"], abs=1e-6)


def test_simulate_writes_a_report_with_references(tmp_path: Path) -> None:
    world = small_world()
    results, doc = simulate(
        world,
        PolicyTarget(MostPopularPolicy()),
        ["random"],
        FAST,
        tmp_path / "r",
        {"title": "t"},
    )
    assert [r.target for r in results] == ["most_popular", "random"]
    assert (tmp_path / "r.json").exists() and (tmp_path / "r.png").stat().st_size > 1000
    assert doc is not None and set(doc["over_time"]) == {"most_popular", "random"}
    assert compare([r.summary() for r in results], "most_popular").keys() == {"random"}


def test_run_over_http_contract_a(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        url = str(server.main.base_url).rstrip("/")
        collector = str(server.collector.base_url).rstrip("/")
        world = small_world(n_items=300, n_users=10)
        # simulate() runs and closes the HTTP client in one event loop
        target = HttpTarget(url, collector, admin_token=ADMIN_TOKEN)
        [result], _ = simulate(world, target, [], FAST, experiment=RANKER_VS_POPULAR)
        s = result.summary()
        assert s["errors"] == 0 and s["answers"] == 30
        # The experiment ran in the server: its report covers every answer.
        assert result.experiment_report is not None
        assert sum(v["lists"] for v in result.experiment_report["variants"]) == 30
        assert s["latency_mean_ms"] > 0
        stats = server.main.get("/api/v1/health").json()
        assert stats["movies"] == 300 and stats["events"] > 0
    finally:
        server.stop()
