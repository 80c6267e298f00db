"""uploads: how far an upload is known to be on disk, and which machine wrote the rest

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28 13:40:00

A chunk's answer no longer waits for its bytes to reach the disk: the sync runs while
the next chunk travels, and ``synced`` records how far syncs have come. Every upload
before this revision synced each chunk before recording it, so ``synced`` starts equal
to ``received``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("synced", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("synced_on", sa.String(length=64), nullable=False, server_default="")
        )
    uploads = sa.table("uploads", sa.column("received", sa.BigInteger), sa.column("synced"))
    op.execute(uploads.update().values(synced=uploads.c.received))


def downgrade() -> None:
    # Older code syncs every chunk before recording it and knows no unsynced bytes: an
    # upload keeps only what is known to be on disk, with the digests of those chunks.
    uploads = sa.table(
        "uploads",
        sa.column("id", sa.Integer),
        sa.column("received", sa.BigInteger),
        sa.column("synced", sa.BigInteger),
        sa.column("chunk_size", sa.BigInteger),
        sa.column("chunk_digests", sa.LargeBinary),
    )
    bind = op.get_bind()
    behind = bind.execute(
        sa.select(
            uploads.c.id, uploads.c.synced, uploads.c.chunk_size, uploads.c.chunk_digests
        ).where(uploads.c.synced < uploads.c.received)
    ).all()
    for row in behind:
        kept = row.synced // row.chunk_size * 4 if row.chunk_size else 0
        bind.execute(
            uploads.update()
            .where(uploads.c.id == row.id)
            .values(received=row.synced, chunk_digests=bytes(row.chunk_digests)[:kept])
        )
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_column("synced_on")
        batch_op.drop_column("synced")
