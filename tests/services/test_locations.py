"""Location use cases: registration rules, privacy, approval, revocation, samples and CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from summitcast.errors import NotFoundError, ValidationError
from summitcast.presence.base import PresenceSnapshot
from summitcast.services import audit_trail, locations
from summitcast.services.accounts import Actor
from summitcast.services.locations import LocationInput
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, PresenceSample, Summit
from tests.conftest import make_summit, make_user

pytestmark = pytest.mark.integration


def _register(
    database: Database,
    summit: Summit,
    *,
    at_risk: frozenset[str] = frozenset(),
    **fields: object,
) -> Location:
    values: dict[str, object] = {"label": "Community hall", "country": "FR", "city": "Paris"}
    values.update(fields)
    with database.session() as db:
        return locations.register_location(
            db,
            db.get(Summit, summit.id),  # type: ignore[arg-type]
            LocationInput(**values),  # type: ignore[arg-type]
            at_risk=at_risk,
        )


def test_register_location_matches_city_offline(database: Database) -> None:
    summit = make_summit(database)

    location = _register(database, summit, city="  PARIS ", kind="hall", expected_audience=40)

    assert (location.country, location.city, location.lat, location.lon) == (
        "FR",
        "Paris",
        48.85,
        2.35,
    )
    assert (location.status, location.privacy_level, location.kind) == ("pending", "public", "hall")
    assert len(location.public_id) == 16
    assert len(location.secret) == 43


def test_register_location_unknown_city_keeps_country_only(database: Database) -> None:
    summit = make_summit(database)

    location = _register(database, summit, city="Nowhereville-sur-Rien")

    assert (location.country, location.city, location.lat, location.lon) == ("FR", "", None, None)


def test_register_location_at_risk_country_defaults_to_country_only(database: Database) -> None:
    summit = make_summit(database)

    location = _register(database, summit, country="ir", city="Tehran", at_risk=frozenset({"IR"}))

    # Nothing finer than the country is stored: no city name, whole-degree coordinates.
    assert (location.country, location.privacy_level, location.city) == ("IR", "country", "")
    assert (location.lat, location.lon) == (36.0, 51.0)


def test_register_location_at_risk_country_respects_explicit_choice(database: Database) -> None:
    summit = make_summit(database)

    location = _register(
        database, summit, country="IR", city="", privacy_level="hidden", at_risk=frozenset({"IR"})
    )

    assert location.privacy_level == "hidden"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"label": "  "}, "label"),
        ({"country": "QQ"}, "country"),
        ({"country": ""}, "country"),
        ({"kind": "castle"}, "kind"),
        ({"expected_audience": 0}, "expected_audience"),
        ({"expected_audience": 1_000_001}, "expected_audience"),
        ({"privacy_level": "secret"}, "privacy_level"),
        ({"label": "x" * 201}, "label"),
        ({"contact": "x" * 301}, "contact"),
    ],
)
def test_register_location_invalid_input_is_refused(
    database: Database, fields: dict[str, object], field: str
) -> None:
    summit = make_summit(database)

    with pytest.raises(ValidationError) as caught:
        _register(database, summit, **fields)

    assert caught.value.field == field
    with database.session() as db:
        assert db.query(Location).count() == 0


def test_register_location_auto_approve_approves_at_once(database: Database) -> None:
    summit = make_summit(database)
    with database.session() as db:
        locations.set_auto_approve(db, db.get(Summit, summit.id), True)  # type: ignore[arg-type]

    location = _register(database, summit)

    assert location.status == "approved"
    assert location.approved_at is not None


def test_approve_selected_only_touches_this_summit(database: Database) -> None:
    summit = make_summit(database, "one")
    other = make_summit(database, "two")
    mine = _register(database, summit)
    theirs = _register(database, other)

    with database.session() as db:
        approved = locations.approve_selected(
            db,
            db.get(Summit, summit.id),  # type: ignore[arg-type]
            [mine.id, theirs.id],
        )

    assert approved == [mine.public_id]
    with database.session() as db:
        assert db.get(Location, theirs.id).status == "pending"  # type: ignore[union-attr]
        assert db.get(Location, mine.id).status == "approved"  # type: ignore[union-attr]


def test_get_location_of_other_summit_is_not_found(database: Database) -> None:
    summit = make_summit(database, "one")
    other = make_summit(database, "two")
    theirs = _register(database, other)

    with database.session() as db, pytest.raises(NotFoundError):
        locations.get_location(db, db.get(Summit, summit.id), theirs.id)  # type: ignore[arg-type]


def test_revoke_location_changes_identity_status(database: Database) -> None:
    summit = make_summit(database)
    location = _register(database, summit)

    with database.session() as db:
        loaded = locations.get_location(db, db.get(Summit, summit.id), location.id)  # type: ignore[arg-type]
        locations.approve_location(db, loaded)
        locations.revoke_location(db, loaded)
        identity = locations.load_identity(db, location.public_id)

    assert identity is not None
    assert identity.status == "revoked"


def test_identity_of_hidden_location_counts_under_zz_without_cell(database: Database) -> None:
    summit = make_summit(database)
    hidden = _register(database, summit, privacy_level="hidden")
    public = _register(database, summit)

    with database.session() as db:
        hidden_identity = locations.load_identity(db, hidden.public_id)
        public_identity = locations.load_identity(db, public.public_id)

    assert hidden_identity is not None
    assert public_identity is not None
    assert (hidden_identity.country_key, hidden_identity.cell_key) == ("ZZ", None)
    assert (public_identity.country_key, public_identity.cell_key) == ("FR", "FR|48.85|2.35|Paris")


def test_list_locations_filters_by_status_and_country(database: Database) -> None:
    summit = make_summit(database)
    _register(database, summit, label="A", country="FR", city="")
    b = _register(database, summit, label="B", country="KE", city="Nairobi")
    _register(database, summit, label="C", country="KE", city="")
    with database.session() as db:
        locations.approve_location(db, db.get(Location, b.id))  # type: ignore[arg-type]

    with database.session() as db:
        s = db.get(Summit, summit.id)
        assert s is not None
        kenya = [loc.label for loc in locations.list_locations(db, s, country="ke")]
        pending_kenya = [
            loc.label for loc in locations.list_locations(db, s, status="pending", country="KE")
        ]
        counts = locations.status_counts(db, s)

    assert sorted(kenya) == ["B", "C"]
    assert pending_kenya == ["C"]
    assert counts == {"pending": 2, "approved": 1, "revoked": 0}


def test_record_sample_twice_for_one_tick_keeps_one_row(database: Database) -> None:
    summit = make_summit(database)
    tick = datetime(2027, 7, 17, 10, 0, tzinfo=UTC)
    snapshot = PresenceSnapshot(total=3, by_country={"FR": 2, "ZZ": 1}, peak=4, peak_at=None)

    with database.session() as db:
        first = locations.record_sample(db, summit.id, tick, snapshot)
    with database.session() as db:
        second = locations.record_sample(db, summit.id, tick, snapshot)

    assert (first, second) == (True, False)
    with database.session() as db:
        rows = db.query(PresenceSample).all()
        assert [(r.sampled_at, r.online_total, r.peak, r.by_country) for r in rows] == [
            (tick, 3, 4, {"FR": 2, "ZZ": 1})
        ]


def test_locations_csv_lists_every_location_without_secrets(database: Database) -> None:
    summit = make_summit(database)
    first = _register(database, summit, label="=HYPERLINK(evil)", contact="host@example.org")
    _register(database, summit, label="Hall B", country="KE", city="Nairobi")

    with database.session() as db:
        text = locations.locations_csv(db, db.get(Summit, summit.id))  # type: ignore[arg-type]

    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(locations.CSV_COLUMNS)
    assert [(r[1], r[2], r[3], r[7], r[8]) for r in rows[1:]] == [
        ("'=HYPERLINK(evil)", "FR", "Paris", "pending", "host@example.org"),
        ("Hall B", "KE", "Nairobi", "pending", ""),
    ]
    assert first.secret not in text
    assert first.public_id not in text


def test_on_air_finds_current_and_next_item(database: Database) -> None:
    from summitcast.services import programme

    summit = make_summit(database)
    with database.session() as db:
        s = db.get(Summit, summit.id)
        assert s is not None
        session = programme.add_session(
            db,
            s,
            programme.SessionInput(
                title="Opening",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 12, tzinfo=UTC),
            ),
        )
        programme.add_item(
            db, session, programme.ItemInput(title="Welcome", planned_duration_s=600)
        )
        programme.add_item(
            db, session, programme.ItemInput(title="Keynote", planned_duration_s=1800)
        )
    with database.session() as db:
        s = db.get(Summit, summit.id)
        assert s is not None
        current, upcoming = locations.on_air(s, datetime(2027, 7, 17, 10, 5, tzinfo=UTC))
        before = locations.on_air_json(s, datetime(2027, 7, 1, tzinfo=UTC))

    assert current is not None
    assert upcoming is not None
    assert (current.title, upcoming.title) == ("Welcome", "Keynote")
    assert upcoming.start == datetime(2027, 7, 17, 10, 10, tzinfo=UTC)
    assert before["now"] is None
    assert before["next"] == {
        "title": "Welcome",
        "session": "Opening",
        "start": "2027-07-17T10:00:00+00:00",
        "end": "2027-07-17T10:10:00+00:00",
    }


def test_reissue_link_changes_secret_keeps_public_id_and_is_audited(database: Database) -> None:
    summit = make_summit(database)
    location = _register(database, summit)
    organiser = make_user(database, "org@example.org")

    with database.session() as db:
        loaded = locations.get_location(db, db.get(Summit, summit.id), location.id)  # type: ignore[arg-type]
        actor = Actor(user_id=organiser.id, is_admin=False)
        locations.reissue_link(db, loaded, actor)
        identity = locations.load_identity(db, location.public_id)
        events = [
            (e.user_id, e.action, e.subject)
            for e in audit_trail.events_of(db, db.get(Summit, summit.id))  # type: ignore[arg-type]
        ]

    assert identity is not None
    assert identity.secret not in (b"", location.secret.encode())
    assert identity.location_id == location.public_id
    assert events == [(organiser.id, "location.link_reissued", f"location:{location.id}")]
