"""Where commands find summitcast's data: one rule, two options, and no database made by accident.

The rule: every command reads and writes the data folder of `Settings` (``./data``
unless ``--data-dir`` or SUMMITCAST_DATA_DIR says otherwise), `summitcast demo`
included, so a command run next to a demo sees the demo's summit. Only `demo`,
`serve` and `db upgrade` create a database; every other command refuses a folder
or URL without one instead of leaving an empty database behind.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from summitcast.config import Settings
from summitcast.errors import NotFoundError, ValidationError
from summitcast.storage.database import Database

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="SUMMITCAST_DATA_DIR",
        show_default=False,
        help=(
            "Folder of summitcast's data (SQLite file, media, logs). "
            "Default: ./data, the folder `summitcast demo` writes to."
        ),
    ),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="SUMMITCAST_DATABASE_URL",
        show_default=False,
        help="Database URL, e.g. postgresql://user@host/db. Default: summitcast.db in --data-dir.",
    ),
]

SCHEMA_TABLE = "alembic_version"  # every migrated summitcast database has it


def settings_for(data_dir: Path | None = None, database_url: str | None = None) -> Settings:
    """Settings with a command's --data-dir and --database-url over SUMMITCAST_* and the file."""
    given = {"data_dir": data_dir, "database_url": database_url}
    return Settings(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]


def redact(url: str) -> str:
    """The URL without its password (database URLs may carry one)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and for SQLite in memory."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ValidationError(f"{redact(url)} is not a database URL") from error
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def _how_to_fix(settings: Settings) -> str:
    if settings.database_url:
        return "run `summitcast db upgrade` with this URL first, or give another --database-url"
    return (
        "start `summitcast demo` or run `summitcast db upgrade` there first, "
        "or point --data-dir (SUMMITCAST_DATA_DIR) at the folder that holds one"
    )


def _sqlite_has_schema(file: Path) -> bool:
    """Whether a SQLite file holds summitcast's schema, read without changing a byte of it."""
    # Read-only, and not through the engine: its connect hook would switch a file to WAL.
    try:
        with closing(sqlite3.connect(f"{file.as_uri()}?mode=ro", uri=True)) as db:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SCHEMA_TABLE,)
            ).fetchone()
    except sqlite3.DatabaseError as error:
        raise NotFoundError(f"cannot read {file} as a summitcast database: {error}") from error
    return found is not None


def _server_has_schema(url: str) -> bool:
    """Whether a database server's database holds summitcast's schema."""
    database = Database(url)
    try:
        with database.engine.connect() as connection:
            return inspect(connection).has_table(SCHEMA_TABLE)
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise NotFoundError(f"cannot open the database {redact(url)}: {reason}") from error
    finally:
        database.dispose()


def require_database(settings: Settings) -> None:
    """Raise NotFoundError, creating nothing, unless settings point at a summitcast database."""
    url = settings.effective_database_url
    file = _sqlite_file(url)
    if file is not None and not file.is_file():
        where = file.parent if settings.database_url else settings.data_dir.resolve()
        raise NotFoundError(
            f"no summitcast database in {where} ({file.name} is not there): {_how_to_fix(settings)}"
        )
    migrated = _sqlite_has_schema(file) if file is not None else _server_has_schema(url)
    if not migrated:
        raise NotFoundError(
            f"{file or redact(url)} holds no summitcast database (no schema version in it): "
            f"{_how_to_fix(settings)}"
        )


@contextmanager
def open_database(settings: Settings, *, create: bool) -> Iterator[Database]:
    """The upgraded database for one command, closed afterwards; created only when create."""
    if not create:
        require_database(settings)
    from summitcast.services.link_secrets import seal_stored_raw

    database = Database(settings.effective_database_url)
    try:
        database.upgrade()
        seal_stored_raw(database, settings)  # secrets stored raw before migration 0015
        yield database
    finally:
        database.dispose()
