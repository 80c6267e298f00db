"""green room: a live speaker's own ingest key per session

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "greenroom_feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("summit_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("speaker_id", sa.Integer(), nullable=False),
        sa.Column("ingest_key", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("taken", sa.Boolean(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_greenroom_feeds_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["speaker_id"],
            ["speakers.id"],
            name=op.f("fk_greenroom_feeds_speaker_id_speakers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["summit_id"],
            ["summits.id"],
            name=op.f("fk_greenroom_feeds_summit_id_summits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_greenroom_feeds")),
        sa.UniqueConstraint("session_id", "speaker_id", name="uq_greenroom_feeds_session_speaker"),
    )
    for column in ("session_id", "speaker_id", "summit_id"):
        op.create_index(
            op.f(f"ix_greenroom_feeds_{column}"), "greenroom_feeds", [column], unique=False
        )


def downgrade() -> None:
    for column in ("session_id", "speaker_id", "summit_id"):
        op.drop_index(op.f(f"ix_greenroom_feeds_{column}"), table_name="greenroom_feeds")
    op.drop_table("greenroom_feeds")
