"""The app factory of uvicorn's workers: one process of a node runs the broadcast."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from summitcast.app import app_from_environment

pytestmark = pytest.mark.integration


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """SUMMITCAST_* variables of a worker whose data folder is tmp_path."""
    monkeypatch.setenv("SUMMITCAST_ENVIRONMENT", "test")
    monkeypatch.setenv("SUMMITCAST_SECRET_KEY", secrets.token_urlsafe(48))
    monkeypatch.setenv("SUMMITCAST_DATA_DIR", str(tmp_path))
    for name in ("SUMMITCAST_DATABASE_URL", "SUMMITCAST_REDIS_URL", "SUMMITCAST_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_only_one_worker_of_a_node_runs_encoders_and_listeners(
    environment: pytest.MonkeyPatch,
) -> None:
    first = app_from_environment()
    second = app_from_environment()
    runs = [a.state.settings.broadcast_workers for a in (first, second)]
    first.state.broadcast_lock.close()  # the first worker dies: the kernel drops its lock
    replacement = app_from_environment()
    replacement.state.broadcast_lock.close()
    for app in (first, second, replacement):
        app.state.database.dispose()

    assert runs == [True, False]
    assert replacement.state.settings.broadcast_workers is True


def test_a_node_without_broadcast_takes_no_lock(
    tmp_path: Path, environment: pytest.MonkeyPatch
) -> None:
    environment.setenv("SUMMITCAST_BROADCAST_WORKERS", "false")

    app = app_from_environment()
    app.state.database.dispose()

    assert app.state.broadcast_lock is None
    assert not (tmp_path / "broadcast.lock").exists()
