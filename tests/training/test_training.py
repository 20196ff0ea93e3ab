"""Training from the store, promotion, hot swap and real-time fold-in, on both backends."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from cinerec.api.main import create_app
from cinerec.config import load_settings
from cinerec.domain import Event, EventKind
from cinerec.ingest import synthetic_catalog, synthetic_events
from cinerec.service import RecService
from cinerec.store import Store
from cinerec.training import build_training_data, holdout_split

ADMIN = {"Authorization": "Bearer training-admin-token"}


def make_service(store: Store, tmp_path: Path, models: list[str]) -> RecService:
    settings = load_settings(
        database_url=store.url,
        data_dir=tmp_path,
        models=models,
        min_events_to_train=10,
        admin_token="training-admin-token",
    )
    svc = RecService(settings, store=store)
    data = synthetic_catalog(300, 200, seed=3)
    svc.add_movies(data.movies)
    for chunk in synthetic_events(data, 6000, seed=3, batch=2000):
        svc.record_events(chunk)
    return svc


def train_job(client: TestClient, mode: str, timeout_s: float = 120) -> dict[str, Any]:
    """``POST /api/v1/admin/train`` (202 with a job), then poll the job until it finished;
    returns the training report."""
    r = client.post("/api/v1/admin/train", json={"mode": mode})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/api/v1/admin/jobs/{r.json()['id']}"
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(r.headers["location"]).json()
        if job["status"] in ("succeeded", "failed"):
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["status"] == "succeeded", job
    return job["result"]


def test_full_then_incremental_training_registers_and_serves(store: Store, tmp_path: Path) -> None:
    svc = make_service(store, tmp_path, ["als"])
    client = TestClient(create_app(svc), headers=ADMIN)
    body = train_job(client, "full")
    assert body["personal"] == "als"
    [trained] = body["trained"]
    assert trained["status"] == "serving" and trained["metrics"]["ndcg@10"] > 0
    body = train_job(client, "incremental")
    assert body["trained"][0]["mode"] == "incremental"
    assert body["ranker"]["kind"] == "ranker"
    everything = client.get("/api/v1/models").json()
    rankers = [m for m in everything if m["kind"] == "ranker"]
    assert sorted(m["status"] for m in rankers) == ["retired", "serving"]  # one per run
    listed = [m for m in everything if m["kind"] != "ranker"]
    assert len(listed) == 2 and {m["kind"] for m in listed} == {"als"}
    statuses = sorted(m["status"] for m in listed)
    assert statuses in (["retired", "serving"], ["rejected", "serving"])
    assert client.post("/api/v1/admin/train", json={"mode": "weekly"}).status_code == 422
    svc.close()


def test_a_like_changes_the_next_recs_without_retraining(store: Store, tmp_path: Path) -> None:
    svc = make_service(store, tmp_path, ["als"])
    svc.trainer.train("full")
    client = TestClient(create_app(svc), headers=ADMIN)
    first = client.get("/api/v1/recommendations/newcomer?k=10&explore=false").json()
    assert {i["source"] for i in first["items"]} != {"als"}  # cold: no personal model yet
    liked = [i["movie_id"] for i in first["items"][:2]]
    r = client.post(
        "/interact", json={"user_id": "newcomer", "item_ids": liked, "actions": ["like", "like"]}
    )
    assert r.status_code == 200
    second = client.get("/api/v1/recommendations/newcomer?k=10&explore=false").json()
    # the like reaches the personal sources at once (fold-in): they propose for this user now
    assert {i["source"] for i in second["items"]} & {"als", "item_to_item", "co_likes"}
    me = svc.engine.user("newcomer")
    assert svc.engine.recommenders["als"].scores(me, svc.engine.catalog) is not None
    shown = {i["movie_id"] for i in first["items"]}
    assert not shown & {i["movie_id"] for i in second["items"]}
    svc.close()


def test_restart_loads_the_serving_model(store: Store, tmp_path: Path) -> None:
    svc = make_service(store, tmp_path, ["als"])
    svc.trainer.train("full")
    svc.rec_log.close()
    again = RecService(svc.settings, store=store)
    again.load()
    assert again.engine.personal == "als"
    # The promoted model serves after a restart: the next events do not trigger a full
    # refit at once (before, the schedule had forgotten when the last full run was).
    again.record_events(
        [
            Event(f"back{i}", m.id, EventKind.LIKE)
            for i in range(5)
            for m in again.store.iter_movies()
        ][:50]
    )
    assert again.trainer.due() is None
    again.rec_log.close()


def test_training_requests_coalesce_while_one_runs(store: Store, tmp_path: Path) -> None:
    """Forty train calls do not tie up the server: each answers 202 at once, and while a
    run waits or runs, the same job is handed out again."""
    svc = make_service(store, tmp_path, ["als"])
    client = TestClient(create_app(svc), headers=ADMIN)
    gate = threading.Event()
    real_train = svc.trainer.train

    def slow_train(mode: str = "full"):  # type: ignore[no-untyped-def]
        gate.wait(30)
        return real_train(mode)

    svc.trainer.train = slow_train  # type: ignore[method-assign]
    answers = [client.post("/api/v1/admin/train", json={"mode": "full"}) for _ in range(40)]
    assert {r.status_code for r in answers} == {202}
    assert len({r.json()["id"] for r in answers}) == 1
    assert client.get("/readyz").status_code in (200, 503)  # the server still answers
    gate.set()
    train_job(client, "full")  # coalesced into (or queued after) the first, then done
    assert client.get("/api/v1/admin/jobs/nope").status_code == 404
    assert client.get("/api/v1/admin/jobs/x", headers={"Authorization": ""}).status_code == 401
    svc.close()


def test_the_schedule_does_not_repeat_a_run_that_ended_while_it_waited(
    store: Store, tmp_path: Path
) -> None:
    """An admin's run and the schedule's tick at once (the demo at start-up: events and
    nothing trained): the schedule waits for the run, then finds nothing due, instead of a
    second full run right after the first."""
    svc = make_service(store, tmp_path, ["als"])
    assert svc.trainer.due() == "full"
    runs: list[str] = []
    svc.trainer.listeners.append(lambda mode, report, seconds: runs.append(mode))
    started = threading.Event()
    real_train_ranker = svc.trainer._train_ranker

    def slow_train_ranker(*args: Any) -> Any:
        started.set()
        time.sleep(0.5)  # the schedule's tick arrives while this run is under way
        return real_train_ranker(*args)

    svc.trainer._train_ranker = slow_train_ranker  # type: ignore[method-assign]
    admin = threading.Thread(target=svc.trainer.train, args=("full",))
    admin.start()
    assert started.wait(60)
    assert svc.trainer.train_if_due() is None
    admin.join()
    assert runs == ["full"]
    svc.close()


def test_cleanup_forgets_models(store: Store, tmp_path: Path) -> None:
    svc = make_service(store, tmp_path, ["als"])
    svc.trainer.train("full")
    svc.cleanup()
    assert svc.engine.personal is None and "als" not in svc.engine.recommenders
    assert store.list_models() == [] and not list((tmp_path / "models").glob("*.npz"))
    svc.close()


def test_training_data_uses_event_weights_and_holdout_removes_one_positive(
    store: Store, tmp_path: Path
) -> None:
    svc = make_service(store, tmp_path, ["als"])
    data = build_training_data(svc.engine)
    x = data.interactions
    touched = {i for u in svc.engine.users.values() for i in u.interactions}
    assert x.shape == (200, len(touched))  # one column per movie with an interaction
    cat = svc.engine.catalog
    assert sorted(cat.ids.get(m) for m in data.item_ids) == sorted(touched)
    assert (x.data < 0).any() and (x.data > 0).any()  # dislikes are negatives
    train, users, items = holdout_split(x, 50, seed=1)
    assert len(set(users.tolist())) == 50  # 20 % of each user's positives, 1 to 10
    assert x.nnz - train.nnz == len(users) >= 50
    assert np.all(np.asarray(x[users, items]).ravel() > 0)
    assert np.all(np.asarray(train[users, items]).ravel() == 0)
    svc.close()


@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_too_few_events_skip_training(tmp_path: Path, mode: str) -> None:
    svc = RecService(
        load_settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", data_dir=tmp_path)
    )
    assert svc.trainer.train(mode).skipped
    svc.close()


def test_model_trained_elsewhere_serves_with_this_processs_ids(
    store: Store, tmp_path: Path
) -> None:
    """A worker's dense ids differ from a live server's; external ids keep them aligned."""
    settings = load_settings(
        database_url=store.url, data_dir=tmp_path, models=["als"], min_events_to_train=10
    )
    server = RecService(settings, store=store)
    data = synthetic_catalog(300, 200, seed=5)
    # Events before their movies exist: the server allocates dense ids in event order.
    events = [e for chunk in synthetic_events(data, 5000, seed=5) for e in chunk]
    server.record_events(events)
    server.add_movies(list(reversed(data.movies)))
    worker = RecService(settings, store=store)
    worker.load()  # loads movies first: a different dense order
    assert worker.engine.catalog.ids.external(0) != server.engine.catalog.ids.external(0)
    worker.trainer.train("full")
    server.trainer.load_serving()
    assert server.engine.personal == "als"
    for user in ("u1", "u7", "u42"):
        a = server.engine.recommend(user, 10, source="als", explore=False, mark_shown=False)
        b = worker.engine.recommend(user, 10, source="als", explore=False, mark_shown=False)
        assert [r.movie_id for r in a] == [r.movie_id for r in b]
    server.rec_log.close()
    worker.rec_log.close()


def test_cleanup_during_training_keeps_the_stale_model_out(store: Store, tmp_path: Path) -> None:
    svc = make_service(store, tmp_path, ["als"])
    real_kinds = svc.trainer.kinds

    def kinds_then_cleanup(data):  # type: ignore[no-untyped-def]
        svc.cleanup()  # arrives while the run is under way
        return real_kinds(data)

    svc.trainer.kinds = kinds_then_cleanup  # type: ignore[method-assign]
    report = svc.trainer.train("full")
    assert report.skipped and "reset" in report.skipped
    assert svc.engine.personal is None and store.list_models() == []
    svc.close()


def test_auto_lets_every_serving_model_compete_and_a_fixed_choice_does_not(
    store: Store, tmp_path: Path
) -> None:
    svc = make_service(store, tmp_path, ["als", "popular"])
    svc.trainer.train("full")
    eng = svc.engine
    assert eng.personal_pool == ["als", "popular"] and eng.personal in eng.personal_pool
    svc.settings.serving_model = "popular"
    svc.trainer.load_serving()
    svc.trainer._choose_personal()
    assert (eng.personal, eng.personal_pool) == ("popular", ["popular"])
    svc.close()


def test_refits_of_a_growing_data_set_keep_to_the_training_duty(
    store: Store, tmp_path: Path
) -> None:
    svc = make_service(store, tmp_path, ["als"])
    svc.trainer.train("full")
    t = svc.trainer
    n = t.last_trained_events
    svc.engine.n_events = n * 2  # grown well past retrain_growth
    t.last_seconds = 30.0  # the last run took 30 s; duty 0.33 asks for ~61 s of rest
    assert t.due(now=t.last_run + 20.0) is None
    assert t.due(now=t.last_run + 62.0) == "full"
    t.last_seconds = 1.0  # a quick run: the minimum interval rules
    assert t.due(now=t.last_run + svc.settings.min_retrain_interval_s + 0.1) == "full"
    svc.close()


def test_scheduled_training_runs_at_the_lowest_cpu_priority() -> None:
    import os
    import threading

    from cinerec.training import _lowest_cpu_priority

    seen: list[int] = []

    def body() -> None:
        _lowest_cpu_priority()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [19]
    # only that thread: the caller's priority is untouched
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 19
