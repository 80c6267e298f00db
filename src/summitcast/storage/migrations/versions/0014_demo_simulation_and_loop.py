"""demo: summits marked as demos, simulated locations, broadcasts that loop

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 15:10:00

``summits.is_demo`` marks the fictional summit of ``summitcast demo``;
``locations.simulated`` marks watch locations that no person registered (the demo's
audience), whose heartbeats count only towards a demo summit; ``broadcasts.loop``
makes a session go back to its first item after the last instead of the closing slate.
Every existing row is real: all three start false.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COLUMNS = (("summits", "is_demo"), ("locations", "simulated"), ("broadcasts", "loop"))


# Plain ALTER TABLE, no batch mode: SQLite would rebuild the table (drop and copy), and
# dropping summits with foreign keys on deletes every session, item and location in it.
def upgrade() -> None:
    for table, column in COLUMNS:
        op.add_column(
            table, sa.Column(column, sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    # Simulated locations would become indistinguishable from registered ones: they go.
    locations = sa.table("locations", sa.column("simulated", sa.Boolean))
    op.execute(locations.delete().where(locations.c.simulated == sa.true()))
    for table, column in reversed(COLUMNS):
        op.drop_column(table, column)  # SQLite >= 3.35 drops a column in place
