"""The recommendation log without its user_id index on SQLite (issue #10, serving speed).

Every list served puts one entry into ``ix_rec_log_user`` at a random place (users arrive
in no order), and SQLite's write-ahead log takes the whole page it lands on: nearly half of
the log writer's CPU (in process, 16-list commits on a 50,000-row log: 47 µs a list with the
index, 25 without). The only reader of the index is ``Store.user_rec_log``, which API
replicas of the topology call to restore a user's shown set, and they run on PostgreSQL
(docs/deployment.md), where the index stays.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_rec_log_user", "rec_log")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_rec_log_user", "rec_log", ["user_id"])
