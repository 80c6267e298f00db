"""audit events: organisers' security-relevant actions (e.g. a location link re-issued)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("summit_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["summit_id"],
            ["summits.id"],
            name=op.f("fk_audit_events_summit_id_summits"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_audit_events_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_summit_id"), "audit_events", ["summit_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_events_summit_id"), table_name="audit_events")
    op.drop_table("audit_events")
