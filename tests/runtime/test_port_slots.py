"""Port slots of sessions on air stay inside the range Settings keeps apart from the others."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from summitcast.config import Settings
from summitcast.errors import ConfigurationError
from summitcast.runtime.broadcast_manager import BroadcastManager
from summitcast.storage.database import Database

pytestmark = pytest.mark.unit


def test_session_slots_stop_at_broadcast_max_sessions(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broadcast_max_sessions=2)
    manager = BroadcastManager(settings, Database(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    manager.runtimes[7] = SimpleNamespace(slot=1)  # type: ignore[assignment]
    first = manager._free_slot()
    manager.runtimes[8] = SimpleNamespace(slot=first)  # type: ignore[assignment]

    with pytest.raises(ConfigurationError, match="All 2 broadcast slots of this node are on air"):
        manager._free_slot()

    assert first == 0
