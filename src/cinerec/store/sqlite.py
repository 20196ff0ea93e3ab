"""SQLite backend: the embedded default (``sqlite:///data/cinerec.db``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.pool import StaticPool

from cinerec.domain import Movie
from cinerec.store.base import search_terms
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

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before we answer 200 (WAL + NORMAL may lose the last
            # transactions on power loss).
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        super().__init__(url, engine)

    def _insert(self, table: Any) -> Any:
        return sqlite_insert(table)

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
