"""PostgreSQL backend (``postgresql://user@host:port/db``), through psycopg 3."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, create_engine
from sqlalchemy.dialects.postgresql import insert as pg_insert

from cinerec.store.sql import SqlStore


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
