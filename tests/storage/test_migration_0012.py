"""Migration 0012: stored SHA-256 chunk digests are cleared; unfinished uploads start again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.storage.conftest import downgrade, insert_row, migrate

pytestmark = pytest.mark.integration

NOW = datetime(2027, 7, 17, 12, 0, tzinfo=UTC)
CHUNK = 1024
# The uploads table as revisions 0008-0012 have it (later revisions add columns).
UPLOADS = sa.table(
    "uploads",
    *(sa.column(name) for name in ("id", "public_id", "invitation_id", "item_id", "kind")),
    *(sa.column(name) for name in ("size", "received", "chunk_size", "chunk_digests")),
    *(sa.column(name) for name in ("sha256", "stored_name", "state", "expires_at")),
    *(sa.column(name) for name in ("language", "filename", "expected_sha256", "claim")),
    *(sa.column(name) for name in ("sniffed", "findings", "facts", "problem")),
    *(sa.column(name) for name in ("output_path", "poster_path", "created_at", "updated_at")),
)


def _seed_uploads_at_0011(engine: sa.Engine) -> dict[str, int]:
    """Uploads as 0008-0011 kept them (32-byte digests per chunk), in each state; their ids."""
    # Rows written through the tables as the database has them: today's ORM tables may
    # have columns that this revision does not.
    with Session(engine) as db:
        connection = db.connection()
        summit = insert_row(connection, "summits", slug="summit", title="S", time_zone="UTC")
        day = insert_row(connection, "days", summit_id=summit, date=NOW.date())
        session = insert_row(
            connection,
            "sessions",
            summit_id=summit,
            day_id=day,
            title="Opening",
            planned_start=NOW,
            planned_end=NOW + timedelta(hours=1),
        )
        item = insert_row(
            connection, "items", summit_id=summit, session_id=session, title="Keynote"
        )
        speaker = insert_row(connection, "speakers", summit_id=summit, name="Ana")
        invitation = insert_row(
            connection,
            "speaker_invitations",
            summit_id=summit,
            item_id=item,
            speaker_id=speaker,
            public_id="invitation",
            expires_at=NOW + timedelta(days=5),
        )
        rows = {
            "fresh": ("receiving", 0, ""),
            "partial": ("receiving", 2 * CHUNK, ""),
            "finished": ("checking", 3 * CHUNK, "ab" * 32),
        }
        ids = {}
        for name, (state, received, sha) in rows.items():
            ids[name] = db.execute(
                UPLOADS.insert()
                .values(
                    public_id=name,
                    invitation_id=invitation,
                    item_id=item,
                    kind="programme",
                    size=3 * CHUNK,
                    received=received,
                    chunk_size=CHUNK,
                    chunk_digests=b"\x01" * 32 * (received // CHUNK),
                    sha256=sha,
                    stored_name=f"{name}.bin",
                    state=state,
                    expires_at=NOW + timedelta(days=1),
                    **{key: "" for key in ("language", "filename", "expected_sha256")},
                    **{key: "" for key in ("claim", "sniffed", "problem")},
                    **{key: "" for key in ("output_path", "poster_path")},
                    findings="[]",
                    facts="{}",
                    created_at=NOW,
                    updated_at=NOW,
                )
                .returning(UPLOADS.c.id)
            ).scalar_one()
        db.commit()
    return ids


def _uploads(engine: sa.Engine) -> dict[str, tuple[str, int, int, bytes, str]]:
    with Session(engine) as db:
        return {
            u.public_id: (u.state, u.received, u.chunk_size, bytes(u.chunk_digests), u.sha256)
            for u in db.execute(sa.select(UPLOADS))
        }


def test_migration_0012_clears_sha256_digests_and_asks_partials_to_start_again(
    empty_engine: sa.Engine,
) -> None:
    migrate(empty_engine, "0011")
    _seed_uploads_at_0011(empty_engine)

    migrate(empty_engine, "0012")

    assert _uploads(empty_engine) == {
        # Nothing stored yet: goes on as a new upload would, with CRC-32C digests.
        "fresh": ("receiving", 0, CHUNK, b"", ""),
        # Its stored digests cannot become CRC-32C without the file: chunk_size 0, which
        # the protocol answers with "please start it again".
        "partial": ("receiving", 2 * CHUNK, 0, b"", ""),
        # Finished: keeps its checksum; no chunk of it is compared any more.
        "finished": ("checking", 3 * CHUNK, CHUNK, b"", "ab" * 32),
    }


def test_migration_0012_downgrade_clears_crc32c_digests_too(empty_engine: sa.Engine) -> None:
    migrate(empty_engine, "0012")
    ids = _seed_uploads_at_0011(empty_engine)  # any digests: they are of the other kind
    with Session(empty_engine) as db:
        db.execute(
            UPLOADS.update().where(UPLOADS.c.id == ids["partial"]).values(chunk_digests=b"\x02" * 8)
        )
        db.commit()

    downgrade(empty_engine, "0011")

    after = _uploads(empty_engine)
    assert after["partial"][2:4] == (0, b"")
    assert after["fresh"][2:4] == (CHUNK, b"")
