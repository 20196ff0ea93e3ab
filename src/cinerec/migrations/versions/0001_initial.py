"""Initial schema: movies, users, events, recommendation log, feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "movies",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("title", sa.String(512), nullable=False, server_default=""),
        sa.Column("year", sa.Integer, nullable=True),
        sa.Column("genres", sa.JSON, nullable=False),
        sa.Column("rating_avg", sa.Float, nullable=True),
        sa.Column("rating_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("hidden", sa.Boolean, nullable=False, server_default="0"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("favorite_genres", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("movie_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("client_event_id", sa.String(128), nullable=True),
    )
    op.create_index("ix_events_user", "events", ["user_id"])
    op.create_index("ix_events_movie", "events", ["movie_id"])
    op.create_index("ux_events_client", "events", ["user_id", "client_event_id"], unique=True)
    op.create_table(
        "rec_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("movie_ids", sa.JSON, nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("ts", sa.Float, nullable=False),
    )
    op.create_index("ix_rec_log_user", "rec_log", ["user_id"])
    op.create_table(
        "feedback",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("movie_id", sa.String(128), nullable=False),
        sa.Column("liked", sa.Boolean, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
    )
    op.create_index("ix_feedback_session", "feedback", ["session_id"])


def downgrade() -> None:
    for table in ("feedback", "rec_log", "events", "users", "movies"):
        op.drop_table(table)
