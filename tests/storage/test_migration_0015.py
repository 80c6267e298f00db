"""Migration 0015 and the sealing after it: a link stored raw keeps working, sealed, not raw."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from summitcast.services import locations
from summitcast.services.link_secrets import LinkSecrets, seal_unsealed
from summitcast.storage.tables import Location
from tests.storage.conftest import downgrade, insert_row, migrate

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RAW = "raw-secret-from-before-0015-" + "r" * 15
LINKS = LinkSecrets("migration-test-key-" + "k" * 32)


def _seed_revision_0014(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        summit = insert_row(
            connection,
            "summits",
            slug="old",
            title="Old",
            time_zone="UTC",
            start_date=date(2027, 1, 1),
            end_date=date(2027, 1, 2),
            languages=["en"],
            created_at=NOW,
            updated_at=NOW,
        )
        insert_row(
            connection,
            "locations",
            summit_id=summit,
            public_id="old-location-1",
            label="Hall",
            country="DE",
            kind="hall",
            privacy_level="public",
            status="approved",
            secret=RAW,
            created_at=NOW,
        )


def test_a_raw_secret_keeps_working_once_sealed(empty_engine: sa.Engine) -> None:
    migrate(empty_engine, "0014")
    _seed_revision_0014(empty_engine)
    migrate(empty_engine, "0015")
    downgrade(empty_engine, "0014")  # nothing sealed yet: the raw column comes back as it was
    with empty_engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT secret FROM locations")).scalar_one()

    migrate(empty_engine, "head")
    with Session(empty_engine) as db, db.begin():
        first = seal_unsealed(db, LINKS)
        again = seal_unsealed(db, LINKS)
    with Session(empty_engine) as db:
        row = db.scalars(sa.select(Location)).one()
        identity = locations.load_identity(db, "old-location-1", LINKS)

    assert kept == RAW
    assert (first, again) == (1, 0)
    assert row.unsealed_secret == ""
    assert row.sealed_secret.startswith("s1.")
    assert RAW not in row.sealed_secret
    assert LINKS.open(row) == RAW
    assert LINKS.matches(row, RAW)
    assert identity is not None
    assert identity.secret == RAW.encode()
    # Sealed secrets open only with the app key: going below 0015 would break the link.
    with pytest.raises(RuntimeError, match="1 locations hold sealed link secrets"):
        downgrade(empty_engine, "0014")
