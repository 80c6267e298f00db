"""Migration 0013: uploads learn how far they are known to be on disk."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.storage.conftest import downgrade, migrate
from tests.storage.test_migration_0012 import CHUNK, UPLOADS, _seed_uploads_at_0011

pytestmark = pytest.mark.integration

SYNCED = sa.table(
    "uploads",
    sa.column("public_id"),
    sa.column("received"),
    sa.column("synced"),
    sa.column("synced_on"),
    sa.column("chunk_digests"),
)


def _rows(engine: sa.Engine) -> dict[str, tuple[int, int, str, bytes]]:
    with engine.connect() as connection:
        return {
            row.public_id: (row.received, row.synced, row.synced_on, bytes(row.chunk_digests))
            for row in connection.execute(sa.select(SYNCED))
        }


def test_migration_0013_counts_every_received_byte_synced(empty_engine: sa.Engine) -> None:
    migrate(empty_engine, "0012")
    _seed_uploads_at_0011(empty_engine)  # 0012 added no column
    with empty_engine.begin() as connection:
        connection.execute(UPLOADS.update().values(chunk_digests=b""))

    migrate(empty_engine, "0013")

    # Until now every chunk was synced before it was recorded.
    assert _rows(empty_engine) == {
        "fresh": (0, 0, "", b""),
        "partial": (2 * CHUNK, 2 * CHUNK, "", b""),
        "finished": (3 * CHUNK, 3 * CHUNK, "", b""),
    }


def test_migration_0013_downgrade_keeps_only_what_is_known_on_disk(
    empty_engine: sa.Engine,
) -> None:
    migrate(empty_engine, "0013")
    _seed_uploads_at_0011(empty_engine)
    with empty_engine.begin() as connection:
        # One chunk received and not yet synced; its digest follows the synced one's.
        connection.execute(
            SYNCED.update()
            .where(SYNCED.c.public_id == "partial")
            .values(synced=CHUNK, synced_on="boot-1", chunk_digests=b"\x01" * 4 + b"\x02" * 4)
        )
        connection.execute(
            SYNCED.update().where(SYNCED.c.public_id != "partial").values(synced=SYNCED.c.received)
        )

    downgrade(empty_engine, "0012")

    with empty_engine.connect() as connection:
        rows = {
            row.public_id: (row.received, bytes(row.chunk_digests))
            for row in connection.execute(sa.select(UPLOADS))
        }
    assert rows["partial"] == (CHUNK, b"\x01" * 4)  # the next older code resumes from here
    assert rows["finished"][0] == 3 * CHUNK
    assert rows["fresh"][0] == 0
