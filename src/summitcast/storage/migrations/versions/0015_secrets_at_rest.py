"""locations' link secrets sealed at rest

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 18:10:00

``locations.secret`` held each location's link secret raw. It becomes
``unsealed_secret`` (what is still raw), and ``sealed_secret`` holds the secret sealed
with a key derived from the app's secret key (services/link_secrets.py). A migration
cannot read that key, so the raw values are sealed, and blanked, by
``link_secrets.seal_unsealed`` when the app or a command next opens the database.
Speaker invitations need nothing: their tokens are signed with the app key, and the
table keeps only the random id and the expiry, which open nothing without it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, no batch mode: SQLite would rebuild the table (drop and copy), and
# dropping locations with foreign keys on would delete the rows that refer to them.
def upgrade() -> None:
    # RENAME COLUMN: SQLite >= 3.25 and PostgreSQL both do it in place.
    op.execute("ALTER TABLE locations RENAME COLUMN secret TO unsealed_secret")
    op.add_column(
        "locations",
        sa.Column("sealed_secret", sa.String(length=128), nullable=False, server_default=""),
    )


def downgrade() -> None:
    # A sealed secret opens only with the app key, which a migration cannot read: going
    # below 0015 would break those hosts' links, so it is refused rather than done.
    sealed = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM locations WHERE sealed_secret <> ''")
    )
    if sealed:
        raise RuntimeError(
            f"{sealed} locations hold sealed link secrets, which a migration cannot unseal: "
            "downgrading below 0015 would stop their links from working; stay on 0015 "
            "or later."
        )
    op.drop_column("locations", "sealed_secret")
    op.execute("ALTER TABLE locations RENAME COLUMN unsealed_secret TO secret")
