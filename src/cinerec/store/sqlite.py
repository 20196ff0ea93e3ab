"""SQLite backend: the embedded default (``sqlite:///data/cinerec.db``)."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.pool import StaticPool

from cinerec.domain import Movie, RecLogEntry
from cinerec.store.base import EventRow, StoreUnavailableError, search_terms
from cinerec.store.sql import EVENT_COLUMNS, SqlStore, _chunks
from cinerec.threads import name_os_thread

#: page cache of a bulk load (KiB), and SQLite's default (pages) it returns to afterwards
BULK_CACHE_KIB = 256 * 1024
DEFAULT_CACHE_PAGES = -2000
_INSERT_EVENTS = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_LOG = (
    "INSERT INTO rec_log (session_id, user_id, movie_ids, sources, source, model_version, "
    "ts, experiment, variant) VALUES "
)
_LOG_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
#: rows of one INSERT into rec_log: 9 parameters each, under SQLite's 32766
_LOG_ROWS_PER_INSERT = 3_000
#: how often the checkpointer copies the write-ahead log into the database file
CHECKPOINT_INTERVAL_S = 0.25
#: a commit checkpoints the log itself only once it holds this many pages (40 MB): the
#: checkpointer fell behind or stopped
WAL_AUTOCHECKPOINT_PAGES = 10_000

log = logging.getLogger(__name__)


def _configure(conn: Any, synchronous: str, memory: bool) -> None:
    """The settings of every connection to the database (a DB-API connection)."""
    cur = conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA synchronous={synchronous}")
    cur.execute("PRAGMA busy_timeout=30000")
    if not memory:  # the checkpointer does it (see Checkpointer)
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cur.close()


def _log_values(entries: Sequence[RecLogEntry]) -> tuple[Any, ...]:
    """The parameters of one multi-row INSERT into rec_log (``_LOG_ROW`` per entry)."""
    values: list[Any] = []
    for e in entries:
        values += (
            e.session_id,
            e.user_id,
            json.dumps(list(e.movie_ids)),
            json.dumps(list(e.sources)),
            e.source,
            e.model_version,
            e.ts,
            e.experiment,
            e.variant,
        )
    return tuple(values)


class Checkpointer:
    """Copies the write-ahead log into the database file in the background (a PASSIVE
    checkpoint, which never blocks readers or writers), every ``CHECKPOINT_INTERVAL_S``.

    SQLite otherwise checkpoints inside the commit that takes the log past 1,000 pages: a
    commit of the recommendation log, which every answer of ``/recs`` waits for, then took
    20-75 ms instead of half a millisecond (timed in process: 17 such commits in 120,000
    lists, 2 with the checkpointer)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        name_os_thread()
        conn = None
        try:
            while not self._stop.wait(CHECKPOINT_INTERVAL_S):
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
                        # A connection that first met the file before the store switched it
                        # to WAL (the first tick can come before the store's first
                        # connection) would answer every checkpoint with (0, -1, -1), "not
                        # in WAL mode", for good: switch (or find it switched) here.
                        conn.execute("PRAGMA journal_mode=WAL").fetchall()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # a busy or vanished file: the next round retries
                    log.debug("checkpoint of %s skipped: %s", self.path, exc)
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)


class SqliteStore(SqlStore):
    # SQLite allows 32766 bound parameters per statement: 8 columns x 2000 rows stays under.
    chunk_size = 2_000

    def __init__(self, url: str) -> None:
        path = url.split(":///", 1)[1] if ":///" in url else ""
        memory = path in ("", ":memory:")
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # An in-memory database lives and dies with its one connection.
            poolclass=StaticPool if memory else None,
        )

        # FULL: a commit is on disk before we answer 200 (WAL + NORMAL may lose the last
        # transactions on power loss).
        event.listen(
            engine, "connect", lambda conn, _record: _configure(conn, "FULL", memory=memory)
        )
        super().__init__(url, engine)
        self._path = None if memory else path
        self._log_conn: sqlite3.Connection | None = None
        self._checkpointer = None if memory else Checkpointer(path)

    def log_recommendations(self, entries: Iterable[RecLogEntry]) -> None:
        """The recommendation log's group commits, on a connection of their own: WAL +
        NORMAL, a commit that survives a crash of the process but not a power loss
        (``SqlStore._log_transaction``), and the sqlite3 module directly. Through SQLAlchemy
        a commit cost ~170 µs more of the writer's CPU (pool, events, transaction objects:
        ~240 against ~70 µs per one-list commit, timed in process), nearly all of it under
        the GIL the event loop serves with. An in-memory database has one connection: the
        base class's path."""
        if self._path is None:
            super().log_recommendations(entries)
            return
        entries = list(entries)
        if not entries:
            return
        with self._write_lock:
            conn = self._log_connection()
            try:
                conn.execute("BEGIN")
                for chunk in _chunks(entries, _LOG_ROWS_PER_INSERT):
                    conn.execute(
                        _INSERT_LOG + ", ".join([_LOG_ROW] * len(chunk)), _log_values(chunk)
                    )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.rollback()
                if isinstance(exc, sqlite3.OperationalError):  # locked, full, vanished
                    raise StoreUnavailableError(f"the database refused the write: {exc}") from exc
                raise

    def _log_connection(self) -> sqlite3.Connection:
        if self._log_conn is None:
            assert self._path is not None
            # Autocommit mode: the transaction is the explicit BEGIN ... COMMIT above.
            conn = sqlite3.connect(
                self._path, timeout=30, check_same_thread=False, isolation_level=None
            )
            _configure(conn, "NORMAL", memory=False)
            self._log_conn = conn
        return self._log_conn

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._write_lock:
            if self._log_conn is not None:
                self._log_conn.close()
                self._log_conn = None
        super().close()

    def _insert(self, table: Any) -> Any:
        return sqlite_insert(table)

    def _existing_client_ids(
        self, conn: Connection, keys: list[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        # The keys go into a connection-private temporary table, joined to the index.
        conn.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS event_keys (user_id TEXT, client_event_id TEXT)"
        )
        conn.exec_driver_sql("DELETE FROM event_keys")
        conn.exec_driver_sql("INSERT INTO event_keys VALUES (?, ?)", keys)
        found = conn.exec_driver_sql(
            "SELECT e.user_id, e.client_event_id FROM event_keys k JOIN events e "
            "ON e.user_id = k.user_id AND e.client_event_id = k.client_event_id"
        )
        return {(r[0], r[1]) for r in found}

    def _insert_log(self, conn: Connection, entries: list[RecLogEntry]) -> None:
        # One multi-row INSERT per chunk: the sqlite3 module lets go of the GIL around every
        # statement step, and a row-by-row executemany had the writer thread queue for the
        # GIL behind the event loop once per row (every answer waits for this commit).
        for chunk in _chunks(entries, _LOG_ROWS_PER_INSERT):
            sql = _INSERT_LOG + ", ".join([_LOG_ROW] * len(chunk))
            conn.exec_driver_sql(sql, _log_values(chunk))

    def _write_events(self, conn: Connection, rows: Sequence[EventRow]) -> None:
        # One prepared statement run over every row by the sqlite3 module in C.
        with _large_cache(conn):
            conn.exec_driver_sql(_INSERT_EVENTS, list(rows))

    def _load_events(self, conn: Connection, rows: Sequence[EventRow]) -> int:
        # The unique index on (user_id, client_event_id) skips retries, stored or in this
        # batch (NULL ids never collide); total_changes counts what was stored.
        raw = conn.connection.driver_connection
        assert raw is not None
        before = raw.total_changes
        with _large_cache(conn):
            conn.exec_driver_sql(_INSERT_EVENTS + " ON CONFLICT DO NOTHING", list(rows))
        return int(raw.total_changes - before)

    def search_movies(self, query: str, limit: int = 20) -> list[Movie]:
        terms = search_terms(query)
        if not terms:
            return []
        # Each word quoted (never FTS5 syntax); the last one a prefix. bm25: best first.
        match = " ".join(f'"{w}"' for w in terms) + "*"
        sql = text(
            "SELECT m.* FROM movies_fts JOIN movies AS m ON m.rowid = movies_fts.rowid "
            "WHERE movies_fts MATCH :match AND NOT m.hidden "
            "ORDER BY bm25(movies_fts), m.id LIMIT :limit"
        )
        with self.engine.connect() as conn:
            rows = conn.execute(sql, {"match": match, "limit": limit})
            return [self._to_movie(r) for r in rows]


@contextmanager
def _large_cache(conn: Connection) -> Iterator[None]:
    """A large page cache while many events are written. Each row goes into three indexes
    at random places: with SQLite's default 2 MB cache, a batch of thousands of rows spent
    most of its time evicting dirty index pages and reading them back. The pages are freed
    afterwards, so the pooled connections of a server keep the default's footprint."""
    conn.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={DEFAULT_CACHE_PAGES}")
