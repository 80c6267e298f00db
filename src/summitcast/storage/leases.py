"""Leases in the database: which node holds a named role (the primary encoder) and until when.

A lease is taken or renewed in one statement, ``UPDATE … WHERE holder = me OR
expires_at < now``, and created by an ``INSERT`` only when its row is missing. Both
are atomic on SQLite (one writer at a time) and on PostgreSQL (under READ COMMITTED
a second UPDATE waits for the first's row lock, then re-checks its WHERE against the
new row and finds it held; of two INSERTs one fails on the primary key), so two
contenders never both hold a lease. Clocks of the nodes are assumed synchronised
(NTP): expiry compares the caller's time with the time another node wrote.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Column, Engine, String, Table, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from summitcast.storage.tables import Base, UTCDateTime

encoder_leases = Table(
    "encoder_leases",
    Base.metadata,
    Column("name", String(32), primary_key=True),  # the role, e.g. "broadcast"
    Column("holder", String(100), nullable=False),  # one process of one node
    Column("expires_at", UTCDateTime(), nullable=False),
)


class Leases(Protocol):
    """Named leases, each held by at most one holder at a time."""

    def acquire(self, name: str, holder: str, ttl_s: float, now: datetime) -> bool:
        """Take or renew the lease for ttl_s from now; True if holder now holds it."""

    def release(self, name: str, holder: str) -> None:
        """Give the lease up at once, if holder holds it."""

    def holder(self, name: str, now: datetime) -> str | None:
        """Who holds the lease at now, or None."""


class SqlLeases:
    """Leases in the encoder_leases table (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def acquire(self, name: str, holder: str, ttl_s: float, now: datetime) -> bool:
        """Renew our lease or take an expired one; create it if nobody ever held it."""
        expires = now + timedelta(seconds=ttl_s)
        table = encoder_leases
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(table)
                .where(table.c.name == name)
                .where(or_(table.c.holder == holder, table.c.expires_at < now))
                .values(holder=holder, expires_at=expires)
            )
            if taken.rowcount == 1:
                return True
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(table).values(name=name, holder=holder, expires_at=expires)
                )
        except IntegrityError:
            return False  # the row exists and someone else holds it (or just made it)
        return True

    def release(self, name: str, holder: str) -> None:
        """Delete the lease row if holder holds it (the next contender creates it)."""
        table = encoder_leases
        with self.engine.begin() as connection:
            connection.execute(delete(table).where(table.c.name == name, table.c.holder == holder))

    def holder(self, name: str, now: datetime) -> str | None:
        """The holder of an unexpired lease, or None."""
        table = encoder_leases
        with self.engine.connect() as connection:
            row = connection.execute(
                select(table.c.holder).where(table.c.name == name, table.c.expires_at >= now)
            ).first()
        return None if row is None else str(row.holder)


@dataclass
class _Held:
    holder: str
    expires_at: datetime


class InMemoryLeases:
    """Leases in a dict, for tests and a single process."""

    def __init__(self) -> None:
        self._leases: dict[str, _Held] = {}
        self._lock = threading.Lock()

    def acquire(self, name: str, holder: str, ttl_s: float, now: datetime) -> bool:
        """Renew or take the lease, as SqlLeases does."""
        with self._lock:
            held = self._leases.get(name)
            if held is not None and held.holder != holder and held.expires_at >= now:
                return False
            self._leases[name] = _Held(holder, now + timedelta(seconds=ttl_s))
            return True

    def release(self, name: str, holder: str) -> None:
        """Give the lease up if holder holds it."""
        with self._lock:
            held = self._leases.get(name)
            if held is not None and held.holder == holder:
                del self._leases[name]

    def holder(self, name: str, now: datetime) -> str | None:
        """The holder of an unexpired lease, or None."""
        with self._lock:
            held = self._leases.get(name)
            return held.holder if held is not None and held.expires_at >= now else None
