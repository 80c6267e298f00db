"""Fixtures of the deployment tests: nginx, and topologies written as TOML-shaped dicts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from summitcast.deploy.topology import Topology, topology_from_dict
from tests.conftest import service_missing

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def nginx() -> str:
    """Debian's nginx (a failure in CI when missing, a skip on a developer's machine)."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None
    )
    if found is None:
        service_missing("nginx", "not installed (make browser installs it)")
    assert found is not None
    return found


def topology_dict(**changes: Any) -> dict[str, Any]:
    """A valid two-encoder topology as load_topology reads it from TOML, with changes."""
    data: dict[str, Any] = {
        "name": "test",
        "base_url": "http://127.0.0.10:8080",
        "root": "cluster",
        "balancer": "127.0.0.10:8080",
        "postgres": "127.0.0.41:5432",
        "redis": "127.0.0.42:6379",
        "page_nodes": [{"name": "p1", "app": "127.0.0.11:8000"}],
        "broadcast_nodes": [
            {"name": "a", "app": "127.0.0.21:8000", "origin": "127.0.0.21:8081"},
            {"name": "b", "app": "127.0.0.22:8000", "origin": "127.0.0.22:8081"},
        ],
        "edges": [{"name": "e1", "listen": "127.0.0.31:8080", "cache_mb": 64}],
    }
    # Workers of an nginx started by root would be "nobody", who cannot enter pytest's folders.
    if os.geteuid() == 0:
        data["nginx_user"] = "root"
    data.update(changes)
    return data


def make_topology(base: Path, **changes: Any) -> Topology:
    """A Topology from topology_dict, relative paths under base."""
    return topology_from_dict(topology_dict(**changes), base=base)
