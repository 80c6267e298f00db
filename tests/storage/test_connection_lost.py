"""connection_lost: a database that went away is told apart from a bad query."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import errors as pg_errors
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from summitcast.storage.database import Database, connection_lost
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.integration


def test_a_postgres_server_that_is_not_there_is_a_lost_connection() -> None:
    database = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    try:
        with pytest.raises(OperationalError) as caught, database.engine.connect():
            pass
    finally:
        database.dispose()

    assert connection_lost(caught.value)


def test_postgres_shutdown_and_start_up_states_are_lost_connections() -> None:
    assert connection_lost(pg_errors.AdminShutdown("terminating connection"))
    assert connection_lost(pg_errors.CannotConnectNow("the database system is starting up"))
    assert connection_lost(psycopg.InterfaceError("the connection is closed"))


def test_a_cancelled_query_is_not_a_lost_connection() -> None:
    assert not connection_lost(pg_errors.QueryCanceled("canceling statement"))
    assert not connection_lost(ValueError("anything else"))


def test_a_sqlite_operational_error_is_not_a_lost_connection(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(OperationalError) as caught, database.engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
    finally:
        database.dispose()

    assert not connection_lost(caught.value)
