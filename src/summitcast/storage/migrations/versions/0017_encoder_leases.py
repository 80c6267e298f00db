"""encoder leases: which broadcast node is the primary encoder

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 01:00:00

``encoder_leases`` holds one row per lease (name "broadcast"): the process holding
it and when it expires. The holder renews it every third of its length; a backup
takes it once it expired (``summitcast.storage.leases``). A new table only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "encoder_leases",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_encoder_leases")),
    )


def downgrade() -> None:
    op.drop_table("encoder_leases")
