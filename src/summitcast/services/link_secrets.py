"""Locations' link secrets at rest: made, sealed with the app key, opened, compared.

The secret in a host's link (``/l/<id>#k=<secret>``) is the HMAC key of the screen's
heartbeats and proves the host on the "was I counted / delete my data" pages. The
table keeps it only sealed (``locations.sealed_secret``, domain/sealing.py), so a copy
of the database cannot sign heartbeats or open a host's pages. Rows stored raw before
migration 0015 are sealed by ``seal_unsealed`` when the app or a command opens the
database (a migration cannot read the app key).
"""

from __future__ import annotations

import hmac
import logging
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DbSession

from summitcast.config import Settings
from summitcast.domain.sealing import Sealer
from summitcast.storage.database import Database
from summitcast.storage.tables import Location

log = logging.getLogger(__name__)

PURPOSE = "location-link/v1"
SECRET_BYTES = 32  # 43 url-safe characters in the link
SEAL_PAGE = 1000  # legacy rows sealed per statement batch


class LinkSecrets:
    """The link secrets of locations under one app key: new ones, sealing, opening, checking."""

    __slots__ = ("_sealer",)

    def __init__(self, app_key: str) -> None:
        self._sealer = Sealer(app_key.encode(), PURPOSE)

    @classmethod
    def of(cls, settings: Settings) -> LinkSecrets:
        """The link secrets of an app with these settings."""
        return cls(settings.secret_key.get_secret_value())

    def new(self, public_id: str) -> tuple[str, str]:
        """A fresh secret for a location and its sealed form: (secret, sealed)."""
        secret = secrets.token_urlsafe(SECRET_BYTES)
        return secret, self.seal(public_id, secret)

    def seal(self, public_id: str, secret: str) -> str:
        """The sealed form of a location's secret, bound to its public id."""
        return self._sealer.seal(secret, public_id)

    def open_sealed(self, public_id: str, sealed: str) -> str:
        """The secret in a sealed value; "" when there is none or this app key cannot open it."""
        if not sealed:
            return ""
        return self._sealer.open(sealed, public_id) or ""

    def open(self, location: Location) -> str:
        """The location's link secret; "" when it has none this app key can open."""
        return self.open_sealed(location.public_id, location.sealed_secret)

    def matches(self, location: Location, presented: str) -> bool:
        """True when ``presented`` is the location's secret (compared in constant time)."""
        secret = self.open(location)
        # compare_digest on bytes: a str with non-ASCII characters would raise TypeError,
        # and a lone surrogate from a hostile form must not raise on encoding either.
        given = presented.encode(errors="replace")
        return bool(secret) and hmac.compare_digest(given, secret.encode())


def seal_stored_raw(database: Database, settings: Settings) -> int:
    """Seal the secrets a database still holds raw, in its own unit of work; how many."""
    with database.session() as db:
        return seal_unsealed(db, LinkSecrets.of(settings))


def seal_unsealed(db: DbSession, links: LinkSecrets) -> int:
    """Seal every secret still stored raw (from before migration 0015) and blank it; how many."""
    sealed = 0
    after = 0
    while True:
        rows = db.execute(
            select(Location.id, Location.public_id, Location.unsealed_secret)
            .where(Location.unsealed_secret != "", Location.id > after)
            .order_by(Location.id)
            .limit(SEAL_PAGE)
        ).all()
        for row_id, public_id, raw in rows:
            # Conditional on the raw value: two workers starting at once seal a row once.
            done = db.execute(
                update(Location)
                .where(Location.id == row_id, Location.unsealed_secret == raw)
                .values(sealed_secret=links.seal(public_id, raw), unsealed_secret="")
                .returning(Location.id)
                .execution_options(synchronize_session=False)
            )
            sealed += len(done.all())
            after = row_id
        if len(rows) < SEAL_PAGE:
            break
    if sealed:
        log.info("sealed %d location link secrets that were stored raw", sealed)
    return sealed
