"""``/metrics`` of the main and collector apps, scraped after real traffic."""

from __future__ import annotations

import math
from pathlib import Path

from fastapi.testclient import TestClient
from tests.observability.conftest import names, scrape, value
from tests.training.test_training import train_job

from cinerec.api.main import create_app, create_collector_app
from cinerec.cache import open_cache
from cinerec.config import load_settings
from cinerec.ingest import synthetic_catalog, synthetic_events
from cinerec.service import RecService
from cinerec.store import Store

SEED_NAMES = {
    "http_requests_total",
    "http_request_latency_seconds_bucket",
    "recommendation_duration_seconds_count",
    "popular_recommendations_total",
    "model_loaded_status",
    "model_train_duration_seconds_count",
    "matrix_size_elements",
    "als_precision_at_3",
    "als_recall_at_3",
    "lightfm_precision_at_3",
    "lightfm_recall_at_3",
}
RECS = "/recs/{user_id}"

OBS_ADMIN_TOKEN = "observability-admin-token"
OBS_ADMIN = {"Authorization": f"Bearer {OBS_ADMIN_TOKEN}"}


def add_catalog(client: TestClient, n: int = 60) -> list[str]:
    ids = [f"m{i}" for i in range(n)]
    r = client.post("/add_items", json={"item_ids": ids, "genres": [["Drama"]] * n})
    assert r.status_code == 200
    return ids


def test_series_move_with_traffic(client: TestClient, svc: RecService) -> None:
    add_catalog(client)
    before = scrape(client)
    recs = lambda s: value(s, "http_requests_total", method="GET", route=RECS, status="200")  # noqa: E731
    shown = liked = disliked = 0.0
    for u in range(6):
        ids = client.get(f"/recs/user-{u}").json()["item_ids"]
        r = client.post(
            "/interact",
            json={
                "user_id": f"user-{u}",
                "item_ids": ids[:3],
                "actions": ["like"] * 2 + ["dislike"],
            },
        )
        assert r.status_code == 200
    client.get("/recs/user-0")
    svc.rec_log.flush()
    assert client.app.state.metrics.online.refresh().groups["all"].lists == 7  # type: ignore[attr-defined]
    after = scrape(client)
    assert SEED_NAMES - {"model_train_duration_seconds_count", "matrix_size_elements"} <= names(
        after
    )
    assert recs(after) - recs(before) == 7
    # one series per route template, whatever the user ids
    assert not [k for k in after if ("route", "/recs/user-0") in k[1]]
    n = value(after, "http_request_latency_seconds_count", method="GET", route=RECS, status="200")
    assert n == recs(after)
    assert value(after, "recommendation_duration_seconds_count") == 7
    for (name, _), v in after.items():
        if name == "cinerec_source_impressions_total":
            shown += v
        elif name == "cinerec_source_likes_total":
            liked += v
        elif name == "cinerec_source_dislikes_total":
            disliked += v
    assert (shown, liked, disliked) == (70, 12, 6)
    assert value(after, "cinerec_events_ingested_total") == 18
    assert value(after, "cinerec_users") == 6 and value(after, "cinerec_catalog_movies") == 60
    assert value(after, "cinerec_online_lists", source="all") == 7
    # six lists with two likes of three movies in the top 3, the seventh (no reaction) with none
    p3 = value(after, "cinerec_online_precision", k="3", source="all")
    assert p3 > 0 and p3 <= 2 / 3
    assert value(after, "cinerec_online_recall", k="10", source="all") == 1.0
    assert math.isnan(value(after, "als_precision_at_3"))  # no ALS list in the window
    # no personal model serves: the popularity lists are counted as such
    popular = sum(v for (name, _), v in after.items() if name == "popular_recommendations_total")
    assert popular == sum(
        v
        for (name, labels), v in after.items()
        if name == "cinerec_recommendations_total"
        and dict(labels)["source"] in {"popular", "top_rated", "genre_top", "genre_popular"}
    )


def test_errors_and_unknown_paths_have_bounded_labels(client: TestClient) -> None:
    for i in range(5):
        assert client.get(f"/no/such/path/{i}").status_code == 404
    assert client.post("/interact", json={"user_id": "u"}).status_code == 422
    s = scrape(client)
    assert value(s, "http_requests_total", method="GET", route="unmatched", status="404") == 5
    assert value(s, "http_requests_total", method="POST", route="/interact", status="422") == 1


def test_collector_app_exports_its_own_traffic(collector: TestClient, client: TestClient) -> None:
    add_catalog(client, 10)
    r = collector.post("/interact", json={"user_id": "u", "item_ids": ["m1"], "actions": ["like"]})
    assert r.status_code == 200
    s = scrape(collector)
    assert value(s, "http_requests_total", method="POST", route="/interact", status="200") == 1
    # the serving state is exported once, by the main app's role
    assert "cinerec_source_impressions_total" not in names(s)
    main = scrape(client)
    assert value(main, "http_requests_total", method="POST", route="/interact", status="200") == 0
    assert value(main, "cinerec_events_ingested_total") == 1


def test_training_metrics_after_a_run(store: Store, tmp_path: Path) -> None:
    settings = load_settings(
        database_url=store.url,
        data_dir=tmp_path,
        models=["als"],
        min_events_to_train=10,
        admin_token=OBS_ADMIN_TOKEN,
    )
    svc = RecService(settings, store=store)
    data = synthetic_catalog(300, 200, seed=3)
    svc.add_movies(data.movies)
    for chunk in synthetic_events(data, 4000, seed=3, batch=2000):
        svc.record_events(chunk)
    client = TestClient(create_app(svc), headers=OBS_ADMIN)
    s = scrape(client)
    assert value(s, "model_loaded_status", model="als") == 0
    assert value(s, "cinerec_training_runs_total", mode="full", outcome="trained") == 0
    train_job(client, "full")
    s = scrape(client)
    assert value(s, "model_loaded_status", model="als") == 1
    assert value(s, "model_train_duration_seconds_count", type="full") == 1
    assert value(s, "cinerec_training_runs_total", mode="full", outcome="trained") == 1
    rec = svc.trainer.serving()["als"].record
    assert value(s, "matrix_size_elements", model="als") == rec.n_users * rec.n_items > 0
    assert value(s, "cinerec_model_ndcg_at_10", model="als") == rec.metrics["ndcg@10"] > 0
    assert value(s, "cinerec_candidate_ndcg_at_10", model="als") == rec.metrics["ndcg@10"]
    assert 0 <= value(s, "cinerec_model_age_seconds", model="als") < 600
    assert value(s, "cinerec_last_training_timestamp_seconds") == svc.trainer.last_run > 0
    assert value(s, "cinerec_events_since_training") == 0
    # a list forced to ALS is what seed 000 calls an ALS list
    r = client.get("/api/recommend/v1/recommendations/u1?model=als")
    assert r.status_code == 200 and r.json()["source"] == "als"
    svc.rec_log.flush()
    client.app.state.metrics.online.refresh()  # type: ignore[attr-defined]
    s = scrape(client)
    assert value(s, "cinerec_online_lists", source="als") == 1
    assert not math.isnan(value(s, "als_precision_at_3"))
    svc.close()


def test_a_dependency_down_shows_as_zero(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    # nothing listens on port 1: every ping of this cache fails
    svc = RecService(settings, cache=open_cache("redis://127.0.0.1:1/0"))
    client = TestClient(create_app(svc))
    client.app.state.metrics.probe.check()  # type: ignore[attr-defined]
    s = scrape(client)
    assert value(s, "cinerec_dependency_up", dependency="database") == 1
    assert value(s, "cinerec_dependency_up", dependency="cache") == 0
    svc.close()


def test_collector_and_main_app_registries_are_apart(svc: RecService) -> None:
    a, b = create_app(svc), create_collector_app(svc)
    assert a.state.metrics.registry is not b.state.metrics.registry
    assert (a.state.metrics.role, b.state.metrics.role) == ("api", "collector")
