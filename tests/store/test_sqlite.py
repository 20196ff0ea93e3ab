"""What only the SQLite backend does: its write-ahead log is checkpointed in the background."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from cinerec.domain import RecLogEntry
from cinerec.store import open_store
from cinerec.store.sqlite import (
    CHECKPOINT_INTERVAL_S,
    WAL_AUTOCHECKPOINT_PAGES,
    Checkpointer,
    SqliteStore,
)


def test_the_checkpointer_copies_the_log_into_the_database_off_the_commits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SqliteStore)
    try:
        with store.engine.connect() as conn:
            # A commit checkpoints only once the log is this long (the checkpointer fell
            # behind): the lists' commits never do it themselves.
            pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert pages == WAL_AUTOCHECKPOINT_PAGES
        before = path.stat().st_size
        movies = [f"m{i}" for i in range(10)]
        # ~2 MB of lists: far below the commits' own threshold (40 MB of log).
        for batch in range(40):
            store.log_recommendations(
                RecLogEntry(f"s{batch}-{i}", f"u{i}", movies, ["popular"] * 10, "popular")
                for i in range(200)
            )
        deadline = time.monotonic() + 10
        while path.stat().st_size < before + 1_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        # The database file grew: the pages reached it from the log.
        assert path.stat().st_size >= before + 1_000_000
    finally:
        store.close()
    assert not store._checkpointer.thread.is_alive()  # type: ignore[union-attr]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM rec_log").fetchone() == (8000,)


def test_the_checkpointer_works_on_a_file_that_turned_to_wal_after_it_started(
    tmp_path: Path,
) -> None:
    # The store's first connection switches the file to WAL; the checkpointer's first tick
    # can come before it (a slow start-up), and must not then stay blind to the log.
    path = tmp_path / "late.db"
    first = sqlite3.connect(path)
    first.execute("CREATE TABLE t (x BLOB)")
    first.commit()
    first.close()
    checkpointer = Checkpointer(str(path))
    try:
        time.sleep(CHECKPOINT_INTERVAL_S * 3)
        writer = sqlite3.connect(path)
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")  # only the checkpointer copies pages
        before = path.stat().st_size
        writer.executemany("INSERT INTO t VALUES (?)", [(b"x" * 1000,) for _ in range(2000)])
        writer.commit()
        deadline = time.monotonic() + 10
        while path.stat().st_size < before + 1_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size >= before + 1_000_000
        writer.close()
    finally:
        checkpointer.close()
