"""uploads: each chunk's stored digest is its CRC-32C; the file checksum is a plain SHA-256

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28 10:40:00

Until now ``chunk_digests`` held each chunk's SHA-256 and ``sha256`` their hash list.
Chunks are now checked with CRC-32C (4 bytes each) and the check job records the
whole file's SHA-256. The stored SHA-256 digests cannot be turned into CRC-32C
without the files, so they are cleared, and an upload still receiving chunks must be
started again (``chunk_size`` 0, which the protocol already answers with "please
start it again"). Finished uploads keep the checksum they were given.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_uploads = sa.table(
    "uploads",
    sa.column("state", sa.String),
    sa.column("received", sa.BigInteger),
    sa.column("chunk_size", sa.BigInteger),
    sa.column("chunk_digests", sa.LargeBinary),
)


def _forget_chunk_digests() -> None:
    op.execute(
        _uploads.update()
        .where(_uploads.c.state == "receiving", _uploads.c.received > 0)
        .values(chunk_size=0)
    )
    op.execute(_uploads.update().values(chunk_digests=b""))


def upgrade() -> None:
    _forget_chunk_digests()


def downgrade() -> None:
    # The other way round too: CRC-32C digests are no SHA-256 hash list.
    _forget_chunk_digests()
