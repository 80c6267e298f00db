"""uploads: per-chunk digests (the file checksum is their hash list) and a chunk claim

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 04:00:00

Uploads started before this revision have chunk_size 0: their sha256 is a plain
SHA-256 of the file, and an unfinished one must be started again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("chunk_size", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column(
                "chunk_digests", sa.LargeBinary(), nullable=False, server_default=sa.text("''")
            )
        )
        batch_op.add_column(
            sa.Column("claim", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claim")
        batch_op.drop_column("chunk_digests")
        batch_op.drop_column("chunk_size")
