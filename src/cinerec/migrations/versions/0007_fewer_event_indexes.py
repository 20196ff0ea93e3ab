"""Two fewer indexes on events (issue #10, ingest speed).

``ix_events_user`` duplicated the leading column of the unique ``ux_events_client``
(user_id, client_event_id), which serves a user's history as well; nothing looks events up
by ``movie_id``, so ``ix_events_movie`` only cost writes. Every event went into each index
at a random place: on a large table the batch endpoint's time grew with it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_events_user", "events")
    op.drop_index("ix_events_movie", "events")


def downgrade() -> None:
    op.create_index("ix_events_movie", "events", ["movie_id"])
    op.create_index("ix_events_user", "events", ["user_id"])
