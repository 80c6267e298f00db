"""Engine and sessions for SQLite (default) or PostgreSQL, and schema upgrades through Alembic."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
# Connections one engine keeps (POOL_SIZE) and may open beyond them under load.
POOL_SIZE = 10
MAX_OVERFLOW = 20
# SQLSTATEs of a server going away or not taking connections yet: class 08 (connection
# exception), admin and crash shutdown, "the database system is starting up".
_LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def make_engine(url: str) -> Engine:
    """Create an engine with the settings each back-end needs."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(
        url,
        # A pooled connection that a PostgreSQL restart cut is found by a ping at checkout
        # and replaced, so the app reconnects by itself once the server is back.
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        # While the server is unreachable a request waits at most this long for a
        # connection, then answers 503, instead of holding a worker thread for minutes.
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


def connection_lost(error: BaseException) -> bool:
    """True when error means the database cannot be reached right now (not a bad query)."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True  # SQLAlchemy saw the connection die under a statement
        error = error.orig if error.orig is not None else error
    # Only PostgreSQL has a server to lose; the embedded SQLite never loads psycopg.
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return False
    if isinstance(error, psycopg.InterfaceError):
        return True  # "the connection is closed"
    if isinstance(error, psycopg.OperationalError):
        # No SQLSTATE: the client could not connect (refused, reset, timed out).
        sqlstate = getattr(error, "sqlstate", None)
        return sqlstate is None or sqlstate.startswith(_LOST_SQLSTATES)
    return False


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLite leaves foreign keys off unless asked per connection;
    # WAL lets readers run while one writer writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL never corrupts the file and skips a disk flush per commit (SQLite's
    # own advice); a power cut may lose the last commits, never consistency.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """The one engine of a running app and the factory of its unit-of-work sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any error."""
        db = self._sessions()
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    @property
    def capacity(self) -> int:
        """How many connections the pool hands out at most at once."""
        return POOL_SIZE + MAX_OVERFLOW

    def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        upgrade(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations shipped in the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine) -> None:
    """Run Alembic migrations on the engine's database up to head."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
