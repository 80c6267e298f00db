"""Migration 0007 moves per-location attendance rows into packed per-bucket rows, exactly."""

from __future__ import annotations

from array import array
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from summitcast.storage.database import alembic_config
from tests.storage.conftest import downgrade, migrate

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
T0 = 1_793_000_100  # a bucket start (a multiple of 300)


def _seed_revision_0006(connection: sa.Connection) -> dict[str, int]:
    """Insert two summits, their locations and old-shape attendance_buckets rows."""
    meta = sa.MetaData()
    meta.reflect(connection, only=["summits", "locations", "attendance_buckets"])
    summits, locations, buckets = (
        meta.tables[n] for n in ("summits", "locations", "attendance_buckets")
    )
    ids: dict[str, int] = {}
    for slug in ("alpha", "beta"):
        ids[slug] = connection.execute(
            summits.insert().returning(summits.c.id),
            {
                "slug": slug,
                "title": slug.title(),
                "description": "",
                "time_zone": "UTC",
                "start_date": date(2026, 11, 1),
                "end_date": date(2026, 11, 2),
                "languages": ["en"],
                "created_at": NOW,
                "updated_at": NOW,
            },
        ).scalar_one()
    for name, summit in (("a1", "alpha"), ("a2", "alpha"), ("a3", "alpha"), ("b1", "beta")):
        ids[name] = connection.execute(
            locations.insert().returning(locations.c.id),
            {
                "summit_id": ids[summit],
                "public_id": f"pub-{name}",
                "label": name,
                "country": "DE",
                "city": "",
                "kind": "hall",
                "expected_audience": 10,
                "contact": "",
                "privacy_level": "public",
                "status": "approved",
                "secret": "s" * 64,
                "created_at": NOW,
            },
        ).scalar_one()
    rows = [
        # Inserted out of order: the packed arrays must come out sorted by location id.
        (ids["a3"], T0, ids["alpha"], 7),
        (ids["a1"], T0, ids["alpha"], 30),
        (ids["a2"], T0, ids["alpha"], 2),
        (
            ids["a1"],
            T0 + 300,
            ids["alpha"],
            2_147_483_647,
        ),  # the largest an old INTEGER column held
        (ids["b1"], T0, ids["beta"], 1),
    ]
    connection.execute(
        buckets.insert(),
        [
            {"location_id": lid, "bucket_start": start, "summit_id": sid, "heartbeats": n}
            for lid, start, sid, n in rows
        ],
    )
    return ids


def _unpack(typecode: str, data: bytes) -> list[int]:
    values = array(typecode)
    values.frombytes(data)
    return values.tolist()


def test_migration_0007_packs_old_rows_per_summit_and_bucket(empty_engine: sa.Engine) -> None:
    migrate(empty_engine, "0006")
    with empty_engine.begin() as connection:
        ids = _seed_revision_0006(connection)

    migrate(empty_engine, "head")

    with empty_engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
        stored = connection.execute(
            sa.text(
                "SELECT summit_id, bucket_start, writer, location_ids, heartbeats "
                "FROM attendance_counts ORDER BY summit_id, bucket_start"
            )
        ).all()
        version = MigrationContext.configure(connection).get_current_revision()
    moved = [
        (sid, start, writer, _unpack("i", bytes(lids)), _unpack("I", bytes(beats)))
        for sid, start, writer, lids, beats in stored
    ]
    assert moved == [
        (ids["alpha"], T0, "0005", [ids["a1"], ids["a2"], ids["a3"]], [30, 2, 7]),
        (ids["alpha"], T0 + 300, "0005", [ids["a1"]], [2_147_483_647]),
        (ids["beta"], T0, "0005", [ids["b1"]], [1]),
    ]
    assert "attendance_buckets" not in tables
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migration_0007_downgrade_gives_the_old_rows_back(empty_engine: sa.Engine) -> None:
    migrate(empty_engine, "0006")
    with empty_engine.begin() as connection:
        ids = _seed_revision_0006(connection)
    migrate(empty_engine, "0007")

    downgrade(empty_engine, "0006")

    with empty_engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT location_id, bucket_start, summit_id, heartbeats FROM attendance_buckets "
                "ORDER BY summit_id, bucket_start, location_id"
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        (ids["a1"], T0, ids["alpha"], 30),
        (ids["a2"], T0, ids["alpha"], 2),
        (ids["a3"], T0, ids["alpha"], 7),
        (ids["a1"], T0 + 300, ids["alpha"], 2_147_483_647),
        (ids["b1"], T0, ids["beta"], 1),
    ]
