"""SQLite backend: the embedded default (``sqlite:///data/cinerec.db``)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.pool import StaticPool

from cinerec.store.sql import SqlStore


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

        def pragmas(synchronous: str) -> Any:
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={synchronous}")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            return _pragmas

        # FULL: a commit is on disk before we answer 200 (WAL + NORMAL may lose the last
        # transactions on power loss).
        event.listen(engine, "connect", pragmas("FULL"))
        super().__init__(url, engine)
        # The recommendation log's own connection: WAL + NORMAL, a commit that survives a
        # crash of the process but not a power loss (``SqlStore._log_transaction``).
        self._log_engine = engine
        if not memory:
            self._log_engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=1
            )
            event.listen(self._log_engine, "connect", pragmas("NORMAL"))
            self._listen_errors(self._log_engine)

    def _log_transaction(self) -> AbstractContextManager[Connection]:
        return self._log_engine.begin()

    def close(self) -> None:
        if self._log_engine is not self.engine:
            self._log_engine.dispose()
        super().close()

    def _insert(self, table: Any) -> Any:
        return sqlite_insert(table)
