"""Full-text search of movie titles in each database's own engine (issue #13).

SQLite: an FTS5 table over ``movies.title`` (external content, kept current by triggers).
PostgreSQL: a GIN index on ``to_tsvector('simple', title)`` (the ``simple`` configuration:
titles are names, not prose in one language, so no stemming or stop words).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SQLITE_UP = [
    "CREATE VIRTUAL TABLE movies_fts USING fts5(title, content='movies', "
    "content_rowid='rowid', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER movies_fts_insert AFTER INSERT ON movies BEGIN "
    "INSERT INTO movies_fts(rowid, title) VALUES (new.rowid, new.title); END",
    "CREATE TRIGGER movies_fts_delete AFTER DELETE ON movies BEGIN "
    "INSERT INTO movies_fts(movies_fts, rowid, title) VALUES ('delete', old.rowid, old.title); "
    "END",
    "CREATE TRIGGER movies_fts_update AFTER UPDATE OF title ON movies BEGIN "
    "INSERT INTO movies_fts(movies_fts, rowid, title) VALUES ('delete', old.rowid, old.title); "
    "INSERT INTO movies_fts(rowid, title) VALUES (new.rowid, new.title); END",
    "INSERT INTO movies_fts(movies_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER movies_fts_update",
    "DROP TRIGGER movies_fts_delete",
    "DROP TRIGGER movies_fts_insert",
    "DROP TABLE movies_fts",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)
    else:
        op.execute(
            "CREATE INDEX ix_movies_title_search ON movies USING gin (to_tsvector('simple', title))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_DOWN:
            op.execute(statement)
    else:
        op.execute("DROP INDEX ix_movies_title_search")
