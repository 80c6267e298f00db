"""The small loopback topology the cluster tests share: its programs, its files, one up."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from summitcast.cluster.harness import Cluster
from summitcast.deploy.topology import Topology, load_topology

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = ("nginx", "redis-server", "/usr/lib/postgresql/15/bin/initdb")


def required(program: str) -> None:
    """Skip on a developer's machine without program, fail in CI."""
    if shutil.which(program) or Path(program).exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{program} is not installed; CI must run the cluster tests", pytrace=False)
    pytest.skip(f"{program} is not installed")


def small_topology(root: Path) -> Topology:
    """deploy/loopback-small.toml with its files under root."""
    return dataclasses.replace(load_topology(REPO / "deploy" / "loopback-small.toml"), root=root)


@contextmanager
def small_cluster(prefix: str, node_env: Mapping[str, str]) -> Iterator[Cluster]:
    """The small topology up (programs checked first); everything stopped and removed after."""
    for program in PROGRAMS:
        required(program)
    # Not under pytest's tmp folder (mode 0700): PostgreSQL runs as postgres, and nginx's
    # workers as the topology's user, and both must reach into the work folder.
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)
    try:
        with Cluster(small_topology(work / "root"), work, node_env=dict(node_env)) as running:
            yield running
    finally:
        if not os.environ.get("SUMMITCAST_KEEP_CLUSTER"):  # set it to read the roles' logs
            shutil.rmtree(work, ignore_errors=True)
