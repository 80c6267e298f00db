"""attendance counts packed per (summit, bucket, writer) instead of a row per location

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 02:10:00

The rows of attendance_buckets are moved into attendance_counts (one row per
summit and bucket, writer "0005"), and back on downgrade (summed over writers).
"""

from __future__ import annotations

import sys
from array import array
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_OLD_WRITER = "0005"


def _pack(typecode: str, values: list[int]) -> bytes:
    """Pack ints little-endian, as summitcast.services.attendance reads them."""
    packed = array(typecode, values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _unpack(typecode: str, data: bytes) -> list[int]:
    values = array(typecode)
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def upgrade() -> None:
    counts = op.create_table(
        "attendance_counts",
        sa.Column("summit_id", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        sa.Column("writer", sa.String(length=40), nullable=False),
        sa.Column("location_ids", sa.LargeBinary(), nullable=False),
        sa.Column("heartbeats", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["summit_id"],
            ["summits.id"],
            name=op.f("fk_attendance_counts_summit_id_summits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "summit_id", "bucket_start", "writer", name=op.f("pk_attendance_counts")
        ),
    )
    assert counts is not None
    old = sa.table(
        "attendance_buckets",
        sa.column("location_id", sa.Integer()),
        sa.column("bucket_start", sa.BigInteger()),
        sa.column("summit_id", sa.Integer()),
        sa.column("heartbeats", sa.Integer()),
    )
    connection = op.get_bind()
    grouped: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    query = sa.select(old.c.summit_id, old.c.bucket_start, old.c.location_id, old.c.heartbeats)
    for summit_id, start, location_id, n in connection.execute(
        query.order_by(old.c.summit_id, old.c.bucket_start, old.c.location_id)
    ):
        grouped[(summit_id, start)].append((location_id, n))
    for (summit_id, start), pairs in grouped.items():
        connection.execute(
            counts.insert().values(
                summit_id=summit_id,
                bucket_start=start,
                writer=_OLD_WRITER,
                location_ids=_pack("i", [p[0] for p in pairs]),
                heartbeats=_pack("I", [p[1] for p in pairs]),
            )
        )
    with op.batch_alter_table("attendance_buckets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attendance_buckets_summit_id"))
    op.drop_table("attendance_buckets")


def downgrade() -> None:
    buckets = op.create_table(
        "attendance_buckets",
        sa.Column("location_id", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        sa.Column("summit_id", sa.Integer(), nullable=False),
        sa.Column("heartbeats", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_attendance_buckets_location_id_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["summit_id"],
            ["summits.id"],
            name=op.f("fk_attendance_buckets_summit_id_summits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("location_id", "bucket_start", name=op.f("pk_attendance_buckets")),
    )
    assert buckets is not None
    with op.batch_alter_table("attendance_buckets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_attendance_buckets_summit_id"), ["summit_id"], unique=False
        )
    connection = op.get_bind()
    existing = {row[0] for row in connection.execute(sa.text("SELECT id FROM locations"))}
    summed: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
    packed = sa.table(
        "attendance_counts",
        sa.column("summit_id", sa.Integer()),
        sa.column("bucket_start", sa.BigInteger()),
        sa.column("location_ids", sa.LargeBinary()),
        sa.column("heartbeats", sa.LargeBinary()),
    )
    for summit_id, start, ids, beats in connection.execute(sa.select(packed)):
        into = summed[(summit_id, start)]
        for location_id, n in zip(_unpack("i", ids), _unpack("I", beats), strict=True):
            into[location_id] = into.get(location_id, 0) + n
    rows = [
        {"location_id": lid, "bucket_start": start, "summit_id": sid, "heartbeats": n}
        for (sid, start), into in summed.items()
        for lid, n in into.items()
        if lid in existing  # deleted locations lost their rows by cascade before
    ]
    if rows:
        connection.execute(buckets.insert(), rows)
    op.drop_table("attendance_counts")
