"""The organisers' list of every upload of a summit: by state and text, sorted, counted."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from summitcast.errors import ValidationError
from summitcast.services import programme, upload_list
from summitcast.storage.database import Database
from summitcast.storage.tables import Upload
from tests import factories
from tests.conftest import make_summit

pytestmark = pytest.mark.integration

START = datetime(2027, 7, 17, 10, tzinfo=UTC)


def _uploads(
    database: Database, slug: str, speaker: str, files: list[tuple[str, str, int]]
) -> None:
    """An item with the speaker invited to it, and one upload row per (file, state, size)."""
    with database.session() as db:
        summit = programme.get_summit(db, slug)
        invitation = factories.invitation(
            db, summit, item_title=f"Talk of {speaker}", speaker_name=speaker
        )
        for filename, state, size in files:
            # Rows only: the list reads rows, and the chunk protocol has its own tests.
            db.add(
                Upload(
                    public_id=secrets.token_urlsafe(16),
                    invitation_id=invitation.id,
                    item_id=invitation.item_id,
                    kind="programme",
                    filename=filename,
                    size=size,
                    stored_name=secrets.token_hex(16),
                    state=state,
                    expires_at=START + timedelta(days=1),
                )
            )
        db.flush()


def _page(
    database: Database, slug: str = "test-summit", **kwargs: object
) -> upload_list.UploadPage:
    with database.session() as db:
        summit = programme.get_summit(db, slug)
        return upload_list.page_of_uploads(db, summit, **kwargs)  # type: ignore[arg-type]


def test_page_of_uploads_filters_by_state_and_text_and_counts_states(database: Database) -> None:
    make_summit(database)
    make_summit(database, "other")
    _uploads(
        database,
        "test-summit",
        "Ana",
        [("ana-take1.mp4", "rejected", 10), ("ana.mp4", "ready", 30)],
    )
    _uploads(database, "test-summit", "Bo", [("speech_100%.mov", "receiving", 20)])
    _uploads(database, "other", "Cy", [("cy.mp4", "ready", 5)])

    everything = _page(database)
    ready = _page(database, state="ready")
    by_speaker = _page(database, text="ana")
    by_item = _page(database, text="talk of bo")
    literal = _page(database, text="100%")

    assert [r.upload.filename for r in everything.rows] == [
        "speech_100%.mov",
        "ana.mp4",
        "ana-take1.mp4",
    ]
    assert everything.summit_total == 3
    assert (everything.counts["ready"], everything.counts["rejected"]) == (1, 1)
    assert everything.counts["receiving"] == 1
    assert [r.upload.filename for r in ready.rows] == ["ana.mp4"]
    assert (ready.rows[0].item_title, ready.rows[0].speaker_name) == ("Talk of Ana", "Ana")
    assert by_speaker.page.total == 2
    assert [r.upload.filename for r in by_item.rows] == ["speech_100%.mov"]
    assert [r.upload.filename for r in literal.rows] == ["speech_100%.mov"]


def test_page_of_uploads_sorts_and_pages(database: Database) -> None:
    make_summit(database)
    files = [(f"file-{n:03d}.mp4", "ready", 1000 + n) for n in range(60)]
    _uploads(database, "test-summit", "Ana", files)

    largest = _page(database, sort="size")
    by_name_second = _page(database, sort="name", page=2)
    oldest = _page(database, sort="oldest")

    assert largest.rows[0].upload.filename == "file-059.mp4"
    assert [r.upload.filename for r in by_name_second.rows] == [
        f"file-{n:03d}.mp4" for n in range(50, 60)
    ]
    assert by_name_second.page.label == "showing 51–60 of 60"
    assert oldest.rows[0].upload.filename == "file-000.mp4"


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"state": "lost"}, "state"), ({"sort": "colour"}, "sort")]
)
def test_page_of_uploads_refuses_bad_input(
    database: Database, kwargs: dict[str, str], field: str
) -> None:
    make_summit(database)

    with pytest.raises(ValidationError) as caught:
        _page(database, **kwargs)

    assert caught.value.field == field
