"""The serving state API replicas share in Redis (its own database, CINEREC_TEST_REDIS_URL):
concurrent claims for one user never overlap, a lost shown set asks to be restored, and a
list that was never received gives its movies back."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cinerec.engine import Recommended
from cinerec.shared import SharedState

REDIS_URL = os.environ.get("CINEREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("CINEREC_REQUIRE_SERVICES") == "1"


@pytest.fixture
def shared() -> Iterator[SharedState]:
    s = SharedState(REDIS_URL)
    try:
        s.ping()
    except Exception as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis required but unreachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    yield s


def _plan(n: int, source: str = "ranker") -> list[Recommended]:
    return [Recommended(f"m{i}", source, 0.0) for i in range(n)]


def test_a_missing_shown_set_asks_for_a_restore_first(shared: SharedState) -> None:
    user = f"u-{uuid.uuid4().hex}"
    shared.put_plan(user, _plan(30))
    assert shared.claim(user, 10).restore
    shared.restore(user, ["m0", "m1"])
    got = shared.claim(user, 10)
    assert not got.restore
    assert [r.movie_id for r in got.items] == [f"m{i}" for i in range(2, 12)]
    assert {r.source for r in got.items} == {"ranker"}


def test_two_replicas_claiming_for_one_user_at_once_never_overlap(shared: SharedState) -> None:
    user = f"u-{uuid.uuid4().hex}"
    shared.put_plan(user, _plan(400))
    shared.restore(user, [])
    replicas = [SharedState(REDIS_URL), SharedState(REDIS_URL)]
    lists: list[list[str]] = []
    lock = threading.Lock()

    def serve(s: SharedState) -> None:
        for _ in range(15):
            got = [r.movie_id for r in s.claim(user, 10).items]
            with lock:
                lists.append(got)

    threads = [threading.Thread(target=serve, args=(s,)) for s in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    served = [m for got in lists for m in got]
    assert len(lists) == 30 and all(len(got) == 10 for got in lists)
    assert len(served) == len(set(served)) == 300


def test_a_dry_plan_goes_on_with_the_shared_plan_then_extra_candidates(
    shared: SharedState,
) -> None:
    user = f"u-{uuid.uuid4().hex}"
    shared.restore(user, [])
    shared.put_plan(user, _plan(4))
    shared.put_plan(None, [Recommended(f"p{i}", "popular", 0.0) for i in range(3)])
    got = shared.claim(user, 10, extra=[Recommended("x1", "item_to_item", 0.0)])
    assert got.dry
    assert [r.movie_id for r in got.items] == ["m0", "m1", "m2", "m3", "p0", "p1", "p2", "x1"]
    shared.put_plan(None, [])


def test_a_released_list_can_be_served_again(shared: SharedState) -> None:
    user = f"u-{uuid.uuid4().hex}"
    shared.restore(user, [])
    shared.put_plan(user, _plan(10))
    first = [r.movie_id for r in shared.claim(user, 5).items]
    shared.release(user, first)
    assert [r.movie_id for r in shared.claim(user, 5).items] == first
    assert shared.shown(user) == set(first)


def test_a_replica_serves_re_shows_once_the_user_has_seen_every_movie(
    shared: SharedState, tmp_path: Path
) -> None:
    from cinerec.config import load_settings
    from cinerec.domain import Event, EventKind, Movie
    from cinerec.service import RecService

    svc = RecService(
        load_settings(
            database_url=f"sqlite:///{tmp_path / 'x.db'}",
            data_dir=tmp_path,
            scheduler=False,
            cache_url=REDIS_URL,
        ),
        role="api",
    )
    svc.load()
    try:
        run = uuid.uuid4().hex[:6]
        svc.add_movies([Movie(f"{run}-m{i}", genres=["Drama"]) for i in range(14)])
        user = f"u-{run}"
        first = [r.movie_id for r in svc.recommend(user, 10).items]
        svc.record_events([Event(user, first[0], EventKind.LIKE)])
        second = svc.recommend(user, 10).items
        assert len(second) == 10  # 4 movies never shown, then 6 shown ones again
        fresh = [r for r in second if r.source != "reshow"]
        again = [r.movie_id for r in second if r.source == "reshow"]
        assert len(fresh) == 4 and not {r.movie_id for r in fresh} & set(first)
        assert set(again) <= set(first) and first[0] not in again  # never what was liked
    finally:
        svc.close()


def test_the_worker_remakes_the_newcomers_plan_as_likes_grow(
    shared: SharedState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cinerec.config import load_settings
    from cinerec.domain import Event, EventKind, Movie
    from cinerec.engine.plans import SHARED_PLAN_NEW
    from cinerec.service import RecService
    from cinerec.topology import Worker

    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'w.db'}",
        data_dir=tmp_path,
        cache_url=REDIS_URL,
        scheduler=False,
    )
    svc = RecService(settings, role="worker")
    try:
        svc.load(progress=False)
        svc.add_movies([Movie(f"m{i}", genres=["Drama"]) for i in range(40)])
        worker = Worker(svc)
        shared_plans: list[int] = []
        monkeypatch.setattr(
            worker, "publish", lambda users: shared_plans.extend(1 for u in users if u is None)
        )
        worker.step()
        assert sum(shared_plans) == 1  # the first step publishes it
        likes = [Event(f"v{u}", "m7", EventKind.LIKE) for u in range(SHARED_PLAN_NEW - 1)]
        svc.engine.apply_events(likes)
        worker.step()
        assert sum(shared_plans) == 1  # a few likes: the plan of a minute ago still serves
        svc.engine.apply_events([Event("w", "m7", EventKind.LIKE)])
        worker.step()
        assert sum(shared_plans) == 2  # the likes outgrew the plan's: made again at once
    finally:
        svc.close()
