"""PostgreSQL backend (``postgresql://user@host:port/db``), through psycopg 3."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from cinerec.domain import Movie
from cinerec.store.base import search_terms
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
