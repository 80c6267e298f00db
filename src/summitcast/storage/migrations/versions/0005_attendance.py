"""attendance buckets and publications of the signed attendance log

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
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
    with op.batch_alter_table("attendance_buckets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_attendance_buckets_summit_id"), ["summit_id"], unique=False
        )

    op.create_table(
        "attendance_publications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("summit_id", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_file", sa.String(length=200), nullable=False),
        sa.Column("log_sha256", sa.String(length=64), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["summit_id"],
            ["summits.id"],
            name=op.f("fk_attendance_publications_summit_id_summits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_publications")),
    )
    with op.batch_alter_table("attendance_publications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_attendance_publications_summit_id"), ["summit_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("attendance_publications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attendance_publications_summit_id"))
    op.drop_table("attendance_publications")
    with op.batch_alter_table("attendance_buckets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attendance_buckets_summit_id"))
    op.drop_table("attendance_buckets")
