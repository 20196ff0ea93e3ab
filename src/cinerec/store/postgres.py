"""PostgreSQL backend (``postgresql://user@host:port/db``), through psycopg 3."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from cinerec.domain import Movie
from cinerec.store.base import EventRow, RefusedValueError, search_terms
from cinerec.store.sql import EVENT_COLUMNS, SqlStore


def _driver_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url}")


class PostgresStore(SqlStore):
    chunk_size = 5_000

    def __init__(self, url: str) -> None:
        engine = create_engine(_driver_url(url), pool_size=10, max_overflow=10, pool_pre_ping=True)
        super().__init__(url, engine)

    def _insert(self, table: Any) -> Any:
        return pg_insert(table)

    @contextmanager
    def _log_transaction(self) -> Iterator[Connection]:
        # Asynchronous commit for this transaction only: the server acknowledges before its
        # WAL reaches the disk (safe from a crash of cinerec; a crash of the database server
        # may lose the last fraction of a second of lists). See SqlStore._log_transaction.
        with self.engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            yield conn

    def _existing_client_ids(
        self, conn: Connection, keys: list[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        # Two arrays, unnested side by side and joined to the unique index: one statement.
        with _raw_cursor(conn) as cur:
            cur.execute(
                "SELECT e.user_id, e.client_event_id FROM events e "
                "JOIN unnest(%s::text[], %s::text[]) AS k(user_id, client_event_id) "
                "ON e.user_id = k.user_id AND e.client_event_id = k.client_event_id",
                ([u for u, _ in keys], [c for _, c in keys]),
            )
            return {(r[0], r[1]) for r in cur.fetchall()}

    def _write_events(self, conn: Connection, rows: Sequence[EventRow]) -> None:
        # COPY: one round trip for the whole batch, rows encoded by psycopg in C.
        with (
            _raw_cursor(conn) as cur,
            cur.copy(f"COPY events ({EVENT_COLUMNS}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def _load_events(self, conn: Connection, rows: Sequence[EventRow]) -> int:
        if not any(r[5] for r in rows):
            # Without client ids nothing can collide: straight in.
            self._write_events(conn, rows)
            return len(rows)
        # COPY cannot skip conflicts: stage the rows, then one INSERT … SELECT in row order
        # that skips retries (ON CONFLICT DO NOTHING also skips a repeat within the batch).
        with _raw_cursor(conn) as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS events_load (seq bigint, user_id text, "
                "movie_id text, kind text, value double precision, ts double precision, "
                "client_event_id text) ON COMMIT DELETE ROWS"
            )
            with cur.copy(f"COPY events_load (seq, {EVENT_COLUMNS}) FROM STDIN") as copy:
                for seq, row in enumerate(rows):
                    copy.write_row((seq, *row))
            cur.execute(
                f"INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM events_load "
                "ORDER BY seq ON CONFLICT DO NOTHING"
            )
            return int(cur.rowcount)

    def search_movies(self, query: str, limit: int = 20) -> list[Movie]:
        terms = search_terms(query)
        if not terms:
            return []
        # The expression matches the GIN index of migration 0004; the last word a prefix.
        tsquery = " & ".join(terms) + ":*"
        sql = text(
            "SELECT * FROM movies WHERE NOT hidden "
            "AND to_tsvector('simple', title) @@ to_tsquery('simple', :q) "
            "ORDER BY ts_rank(to_tsvector('simple', title), to_tsquery('simple', :q)) DESC, id "
            "LIMIT :limit"
        )
        with self.engine.connect() as conn:
            rows = conn.execute(sql, {"q": tsquery, "limit": limit})
            return [self._to_movie(r) for r in rows]


@contextmanager
def _raw_cursor(conn: Connection) -> Iterator[psycopg.Cursor[Any]]:
    """A psycopg cursor in ``conn``'s transaction. SQLAlchemy does not see what runs on it, so
    a value the database refuses (a NUL character, an id too long) becomes the store's
    :class:`RefusedValueError` here, as ``sql._refused_value`` does for Core statements."""
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cur:
            yield cur
    except psycopg.DataError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid value"
        raise RefusedValueError(reason) from exc
