"""A real server: uploads created and their first chunk sent at once are never answered 404.

The full figure (200 clients, 10 rounds) is benchmarks/upload_commit_race.py; here a
smaller race on SQLite (the embedded default) and PostgreSQL keeps the suite quick.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import scratch_postgres
from tests.e2e.app_server import app_server
from tests.e2e.upload_race import run_race, seed_speakers

pytestmark = pytest.mark.e2e

CHUNK = 64 * 1024
CLIENTS = 100
ROUNDS = 1


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The server's own database: a SQLite file in its folder, or a scratch PostgreSQL one."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'race.db'}"
        return
    with scratch_postgres("summitcast_race") as url:
        yield url


def test_first_chunk_right_after_creation_is_never_404(tmp_path: Path, database_url: str) -> None:
    secret = secrets.token_urlsafe(48)
    env = {
        "SUMMITCAST_SECRET_KEY": secret,
        "SUMMITCAST_DATABASE_URL": database_url,
        "SUMMITCAST_UPLOAD_CHUNK_BYTES": str(CHUNK),
        "SUMMITCAST_JOB_WORKERS": "false",
    }
    with app_server(tmp_path, env) as server:
        tokens = seed_speakers(database_url, secret.encode(), CLIENTS)

        rounds = run_race(server.base_url, tokens, rounds=ROUNDS, chunk_bytes=CHUNK)

    assert [dict(r.create_statuses) for r in rounds] == [{201: CLIENTS}] * ROUNDS
    assert [dict(r.chunk_statuses) for r in rounds] == [{204: CLIENTS}] * ROUNDS
    assert [r.visible for r in rounds] == [CLIENTS] * ROUNDS
    assert "Traceback" not in server.log.read_text()
