"""greenroom_feeds.taken_generation: a take lasts until the broadcast next changes

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 04:10:00

Feeds taken before this revision count as not taken (the producer takes them again).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("greenroom_feeds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("taken_generation", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("greenroom_feeds", schema=None) as batch_op:
        batch_op.drop_column("taken_generation")
