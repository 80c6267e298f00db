"""`summitcast cluster up` as an operator runs it: URLs printed, Ctrl-C stops every process."""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from summitcast.cluster.commands import summitcast_program
from summitcast.cluster.harness import SMALL_NODE_ENV, Cluster
from summitcast.cluster.processes import ClusterError
from summitcast.deploy.topology import Endpoint, load_topology
from tests.cluster.small import REPO, required

SMALL = REPO / "deploy" / "loopback-small.toml"


@pytest.fixture
def topology_file() -> Iterator[Path]:
    """deploy/loopback-small.toml with its root in a fresh folder that postgres can reach."""
    folder = Path(tempfile.mkdtemp(prefix="summitcast-cluster-cli-"))
    folder.chmod(0o755)
    text = SMALL.read_text(encoding="utf-8")
    assert 'root = "../var/cluster"' in text
    path = folder / "loopback-small.toml"
    path.write_text(text.replace('root = "../var/cluster"', f'root = "{folder}/root"'))
    try:
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _processes_under(folder: Path) -> list[str]:
    """Command lines of live processes whose command or environment names folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            # App nodes have their folders in SUMMITCAST_* variables only.
            environ = (entry / "environ").read_bytes().decode(errors="replace")
            zombie = "State:\tZ" in (entry / "status").read_text()
        except OSError:
            continue
        if str(folder) in cmdline + environ and not zombie and int(entry.name) != os.getpid():
            found.append(cmdline)
    return found


@pytest.mark.e2e
def test_cluster_up_prints_the_urls_and_ctrl_c_stops_every_process(topology_file: Path) -> None:
    for program in ("nginx", "redis-server", "/usr/lib/postgresql/15/bin/initdb"):
        required(program)
    work = topology_file.parent / "work"
    argv = [summitcast_program(), "cluster", "up", str(topology_file), "--work-dir", str(work)]
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while not any("is up" in line for line in lines) and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        health = httpx.get("http://127.0.0.10:8080/healthz", timeout=10)
        running_before = _processes_under(topology_file.parent)
        process.send_signal(signal.SIGINT)  # Ctrl-C in its terminal
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = "".join(lines) + rest

    assert process.returncode == 0, output
    assert health.status_code == 200, output
    for role in ("balancer", "page-p1", "page-p2", "edge-e1", "origin-b"):
        assert role in output
    assert "http://127.0.0.10:8080 is up" in output
    assert "Stopped every process of the cluster." in output
    assert len(running_before) >= 10, running_before  # nginx x5, apps x4, postgres…
    assert _processes_under(topology_file.parent) == []
    assert not (work / "postgres").exists()


@pytest.mark.integration
def test_cluster_commands_prints_every_step_the_harness_runs(topology_file: Path) -> None:
    work = topology_file.parent / "work"
    cluster = Cluster(load_topology(topology_file), work)

    result = subprocess.run(
        [summitcast_program(), "cluster", "commands", str(topology_file), "--work-dir", str(work)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    for step, command in cluster.commands().items():
        assert f"# {step}\n{command.shell()}\n" in result.stdout
    assert "-g 'daemon off;'" in result.stdout
    assert f"--secret-key-file {work}/secret_key" in result.stdout


@pytest.mark.integration
def test_cluster_up_refuses_a_missing_topology(tmp_path: Path) -> None:
    result = subprocess.run(
        [summitcast_program(), "cluster", "up", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "nope.toml" in result.stderr


@pytest.mark.integration
def test_a_taken_address_is_refused_before_anything_starts(topology_file: Path) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        taken = Endpoint("127.0.0.1", stranger.getsockname()[1])
        topology = dataclasses.replace(load_topology(topology_file), redis=taken)
        cluster = Cluster(topology, topology_file.parent / "work")

        with pytest.raises(ClusterError) as raised:
            cluster.start_all()

    assert f"{taken.address} of redis is taken" in raised.value.message
    assert cluster.roles == {}
    assert not (topology_file.parent / "work" / "postgres").exists()


def _as_in_the_guide(line: str, work: Path, root: Path) -> str:
    """A command line as docs/deploy.md writes it: $W, $R, the checkout's .venv, "" quotes."""
    line = line.replace(summitcast_program(), ".venv/bin/summitcast").replace("''", '""')
    return line.replace(str(work), "$W").replace(str(root), "$R")


@pytest.mark.unit
def test_the_guide_gives_every_command_the_harness_runs(topology_file: Path) -> None:
    work = topology_file.parent / "work"
    topology = load_topology(topology_file)
    cluster = Cluster(topology, work, node_env=SMALL_NODE_ENV)
    # The guide's shell: continued lines joined, one loop for the app nodes and one for nginx.
    guide = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8").replace("\\\n", " ")
    guide = " ".join(guide.split())
    missing = []

    for step, command in cluster.commands().items():
        kind, _, name = step.partition("-")
        words = [*(f"{k}={v}" for k, v in command.env.items()), shlex.join(command.argv)]
        if command.env_file is not None:
            loop = "$node" if kind in ("page", "broadcast") else name
            words.append(str(command.env_file).replace(f"/{name}.env", f"/{loop}.env"))
        for word in words:
            if kind in ("origin", "edge", "balancer"):
                word = word.replace(f"/nginx/{step}", "/nginx/$role")
            if _as_in_the_guide(word, work, topology.root) not in guide:
                missing.append(f"{step}: {_as_in_the_guide(word, work, topology.root)}")

    assert missing == []
