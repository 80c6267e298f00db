"""locations: indexes on (summit_id, last_online_at) and (summit_id, last_offline_at)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 07:30:00

The organiser dashboard asks every few seconds for one summit's 20 newest arrivals
and drops; without these indexes each ask sorted all of the summit's locations.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_locations_summit_id_last_online_at"),
        "locations",
        ["summit_id", "last_online_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_locations_summit_id_last_offline_at"),
        "locations",
        ["summit_id", "last_offline_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_locations_summit_id_last_offline_at"), table_name="locations")
    op.drop_index(op.f("ix_locations_summit_id_last_online_at"), table_name="locations")
