"""A/B experiments (issue #12 item 4): the experiments table, and the experiment and variant
of every logged list.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("variants", sa.JSON, nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("winner", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("stopped_at", sa.Float, nullable=True),
    )
    op.create_index("ix_experiments_created", "experiments", ["created_at"])
    # Nullable columns: SQLite adds them in place (no table copy), lists logged before stay
    # outside every experiment.
    op.add_column("rec_log", sa.Column("experiment", sa.String(64), nullable=True))
    op.add_column("rec_log", sa.Column("variant", sa.String(64), nullable=True))
    op.create_index("ix_rec_log_experiment", "rec_log", ["experiment"])


def downgrade() -> None:
    op.drop_index("ix_rec_log_experiment", "rec_log")
    with op.batch_alter_table("rec_log") as batch:
        batch.drop_column("variant")
        batch.drop_column("experiment")
    op.drop_index("ix_experiments_created", "experiments")
    op.drop_table("experiments")
