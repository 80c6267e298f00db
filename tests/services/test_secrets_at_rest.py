"""Secrets at rest: a copy of the database signs no heartbeat and opens no host or speaker page."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from summitcast.config import Settings
from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.errors import NotFoundError, PermissionDeniedError
from summitcast.presence.memory import MemoryPresence, MemoryPubSub
from summitcast.services import attendance, locations, programme, speakers
from summitcast.services.link_secrets import LinkSecrets
from summitcast.services.live import LiveService, Outcome, Reason
from summitcast.services.locations import LocationInput
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, Summit
from tests import factories
from tests.conftest import make_summit

pytestmark = pytest.mark.integration

WALL = 1_800_000_000.0
_epochs = itertools.count()


def _live(settings: Settings, database: Database) -> LiveService:
    return LiveService(
        settings=settings,
        database=database,
        presence=MemoryPresence(60.0, clock=lambda: 1000.0),
        pubsub=MemoryPubSub(),
        wall_clock=lambda: WALL,
    )


def _beat(live: LiveService, public_id: str, key: bytes) -> Outcome:
    # A fresh epoch per beat: a refusal can only come from the signature, never a replay.
    hb = sign_heartbeat(key, public_id, f"epoch-{next(_epochs):06d}", 0, int(WALL))
    return asyncio.run(live.heartbeat(encode_heartbeat(hb)))


def _world(database: Database, settings: Settings) -> tuple[dict[str, str], str]:
    """Three approved locations (one re-issued, one bulk) and a speaker's link: their secrets."""
    links = LinkSecrets.of(settings)
    make_summit(database)
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        made = [
            locations.register_location(
                db, summit, LocationInput(label=f"Hall {n}", country="FR"), at_risk=(), links=links
            )
            for n in range(2)
        ]
        secrets = {location.public_id: links.open(location) for location in made}
        secrets[made[1].public_id] = locations.reissue_link(db, made[1], None, links)
        for location in made:
            locations.approve_location(db, location)
        bulk = locations.register_locations_bulk(
            db, summit, [LocationInput(label="Bulk", country="KE")], links=links
        )
        secrets[bulk[0].location_id] = bulk[0].secret
        invitation = factories.invitation(db, summit, valid_days=5)
        token = speakers.invitation_token(invitation, _app_key(settings))
    return secrets, token


def _app_key(settings: Settings) -> bytes:
    return settings.secret_key.get_secret_value().encode()


def _dump(database: Database) -> list[object]:
    """Every value of every row of every table, as a copy of the database would hold it."""
    meta = sa.MetaData()
    values: list[object] = []
    with database.engine.connect() as connection:
        meta.reflect(connection)
        for table in meta.sorted_tables:
            for row in connection.execute(sa.select(table)):
                values.extend(row)
    return values


def _candidate_keys(values: list[object]) -> set[bytes]:
    """Each string or bytes value, its dot-separated parts, and what base64 decodes them to."""
    keys: set[bytes] = set()
    for value in values:
        if isinstance(value, bytes | bytearray | memoryview):
            keys.add(bytes(value))
        elif isinstance(value, str):
            for part in {value, *value.split(".")}:
                keys.add(part.encode())
                with contextlib.suppress(binascii.Error, ValueError):
                    keys.add(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    keys.discard(b"")
    return keys


def test_database_dump_holds_no_usable_secret(database: Database, settings: Settings) -> None:
    secrets, token = _world(database, settings)
    dumped = _dump(database)
    keys = _candidate_keys(dumped)
    live = _live(settings, database)

    assert not any(isinstance(v, str) and v in secrets.values() for v in dumped)
    refused = {(pid, _beat(live, pid, key).reason) for pid in secrets for key in keys}
    accepted = [_beat(live, pid, secret.encode()) for pid, secret in secrets.items()]

    assert len(keys) > 50  # the dump was really read
    assert refused == {(pid, Reason.BAD_SIGNATURE) for pid in secrets}
    assert [outcome.ok for outcome in accepted] == [True, True, True]
    with database.session() as db:
        for location in db.scalars(sa.select(Location)):
            for key in keys:
                with pytest.raises(PermissionDeniedError):
                    attendance.check_location_secret(settings, location, key.decode("latin-1"))
            attendance.check_location_secret(settings, location, secrets[location.public_id])
        # A speaker's link: the dump has its id and expiry, but only the app key signs it.
        public_id, expires, _ = token.split(".")
        for key in keys:
            forged = f"{public_id}.{expires}.{speakers._signature(key, public_id, int(expires))}"
            with pytest.raises(NotFoundError):
                speakers.open_invitation(db, forged, _app_key(settings))
        assert speakers.open_invitation(db, token, _app_key(settings)).public_id == public_id


def test_reissued_link_works_and_the_old_one_stops(database: Database, settings: Settings) -> None:
    links = LinkSecrets.of(settings)
    summit = make_summit(database)
    with database.session() as db:
        location = locations.register_location(
            db, db.get(Summit, summit.id), LocationInput(label="Hall", country="FR"),
            at_risk=(), links=links,
        )  # fmt: skip
        locations.approve_location(db, location)
        old = links.open(location)
    live = _live(settings, database)
    assert _beat(live, location.public_id, old.encode()).ok

    with database.session() as db:
        row = db.get(Location, location.id)
        assert row is not None
        new = locations.reissue_link(db, row, None, links)
    asyncio.run(live.location_changed(summit.id, location.public_id, offline=True))

    assert new != old
    assert _beat(live, location.public_id, old.encode()).reason == Reason.BAD_SIGNATURE
    assert _beat(live, location.public_id, new.encode()).ok
    with database.session() as db:
        row = db.get(Location, location.id)
        assert row is not None
        with pytest.raises(PermissionDeniedError):
            attendance.check_location_secret(settings, row, old)
        attendance.check_location_secret(settings, row, new)


def test_another_app_key_opens_no_link(database: Database, settings: Settings) -> None:
    secrets, _ = _world(database, settings)
    rotated = settings.model_copy(update={"secret_key": SecretStr("y" * 48)})
    live = _live(rotated, database)

    outcomes = {_beat(live, pid, secret.encode()).reason for pid, secret in secrets.items()}

    assert outcomes == {Reason.BAD_SIGNATURE}


def test_host_pages_refuse_odd_secrets_plainly(database: Database, settings: Settings) -> None:
    _world(database, settings)

    with database.session() as db:
        location = db.scalars(sa.select(Location)).first()
        assert location is not None
        for presented in ("", "\ud800", "é" * 43, "x" * 5000):
            with pytest.raises(PermissionDeniedError):
                attendance.check_location_secret(settings, location, presented)
