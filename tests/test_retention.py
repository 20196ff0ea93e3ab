"""The recommendation log's retention (issue #11): lists older than
``rec_log_retention_days`` are deleted at start (and hourly by the scheduler), and the
start-up replay rebuilds who was shown what from the lists kept, no more."""

from __future__ import annotations

import time
from pathlib import Path

from cinerec.config import Settings, load_settings
from cinerec.domain import Event, EventKind, Movie, RecLogEntry
from cinerec.service import RecService

DAY = 86_400.0


def retaining(tmp_path: Path, days: float) -> Settings:
    return load_settings(
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        data_dir=tmp_path,
        scheduler=False,
        rec_log_retention_days=days,
    )


def test_a_restart_replays_only_the_lists_within_retention(tmp_path: Path) -> None:
    settings = retaining(tmp_path, days=30)
    svc = RecService(settings)
    svc.add_movies([Movie(f"m{i}", f"Movie {i}", 2000, ["Drama"]) for i in range(50)])
    now = time.time()
    svc.store.log_recommendations(
        [
            RecLogEntry(
                "s-old", "gone", ["m1", "m2"], ["popular"] * 2, "popular", ts=now - 31 * DAY
            ),
            RecLogEntry(
                "s-new", "kept", ["m3", "m4"], ["popular"] * 2, "popular", ts=now - 29 * DAY
            ),
        ]
    )
    svc.close()

    again = RecService(settings)
    again.load()
    try:
        assert [e.session_id for e in again.store.iter_rec_log()] == ["s-new"]
        eng = again.engine
        known = {eng.user_ids.get("gone"), eng.user_ids.get("kept")} - {None}
        assert len(known) == 1 and eng.user_ids.get("kept") in known
        # Within the window nothing shown comes back; past it, the old list is forgotten.
        assert not {"m3", "m4"} & {r.movie_id for r in again.recommend("kept", 40).items}
        assert again.purge_rec_log(now + 2 * DAY) == 1  # the hourly purge moves with time
    finally:
        again.close()


def test_retention_zero_keeps_every_list(tmp_path: Path) -> None:
    settings = retaining(tmp_path, days=0)
    svc = RecService(settings)
    try:
        svc.store.log_recommendations(
            [RecLogEntry("s", "u", ["m1"], ["popular"], "popular", ts=time.time() - 3650 * DAY)]
        )
        assert svc.purge_rec_log() == 0 and svc.store.get_rec_log("s") is not None
    finally:
        svc.close()


def test_users_known_only_from_lists_past_retention_are_forgotten_in_memory(
    tmp_path: Path,
) -> None:
    settings = retaining(tmp_path, days=30)
    svc = RecService(settings)
    svc.add_movies([Movie(f"m{i}", f"Movie {i}", 2000, ["Drama"]) for i in range(50)])
    now = time.time()
    svc.store.log_recommendations(
        [RecLogEntry("s", "old", ["m1", "m2"], ["popular"] * 2, "popular", ts=now - 29 * DAY)]
    )
    svc.close()

    again = RecService(settings)
    again.load()
    try:
        eng = again.engine
        assert eng.user_ids.get("old") in eng.viewers  # replayed with the list's own time
        eng.mark_shown("recent", ["m3"])
        eng.mark_shown("acted", ["m4"])
        again.record_events([Event("acted", "m5", EventKind.LIKE)])
        assert again.forget_viewers(now) == 0  # all within the window
        assert again.forget_viewers(now + 2 * DAY) == 1  # the hourly run moves with time
        assert eng.user_ids.get("old") is None
        assert eng.user_ids.get("recent") in eng.viewers
        assert eng.user("acted", create=False) is not None  # a user with events stays
        # who comes back after it is a newcomer; the ids of the others are unchanged
        assert len(again.recommend("old", 10).items) == 10
        assert eng.user_ids.get("old") not in (None, eng.user_ids.get("recent"))
    finally:
        again.close()
