"""Supervised programs: whole process groups killed, clear errors when a role does not come up."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from summitcast.cluster.commands import Command
from summitcast.cluster.processes import ClusterError, Probe, Supervised
from summitcast.deploy.topology import Endpoint

pytestmark = pytest.mark.integration

# A leader that starts a child and ignores SIGTERM, as a stubborn server might.
STUBBORN = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has not been reaped by its new parent yet: it is gone all the same.
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def _child_pid(log: Path) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lines = [line for line in log.read_text().splitlines() if line.strip().isdigit()]
        if lines:
            return int(lines[0])
        time.sleep(0.05)
    raise AssertionError(log.read_text())


# A leader whose child runs in a session of its own, as the app's ffmpeg processes do.
DETACHED = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
    " start_new_session=True)\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def test_sigkill_takes_children_in_sessions_of_their_own(tmp_path: Path) -> None:
    """A node that dies takes its ffmpeg with it (an idle SRT listener kept its port)."""
    program = Supervised(
        "detached", Command((sys.executable, "-c", DETACHED)), None, tmp_path / "d.log"
    )
    program.start()
    child = _child_pid(program.log)
    assert os.getpgid(child) != os.getpgid(program.process.pid)  # type: ignore[union-attr]

    program.kill()

    assert not program.running
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_kill_reaches_every_process_of_the_group(tmp_path: Path) -> None:
    program = Supervised(
        "stubborn", Command((sys.executable, "-c", STUBBORN)), None, tmp_path / "s.log"
    )
    program.start()
    child = _child_pid(program.log)

    program.kill()

    assert not program.running
    assert not _alive(child)


def test_stop_kills_what_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    program = Supervised(
        "stubborn", Command((sys.executable, "-c", STUBBORN)), None, tmp_path / "s.log"
    )
    program.start()
    child = _child_pid(program.log)
    started = time.monotonic()

    program.stop(grace_s=0.5)

    assert program.process is not None
    assert program.process.returncode == -signal.SIGKILL
    assert not _alive(child)
    assert time.monotonic() - started < 10


def test_a_role_that_exits_is_named_with_its_log(tmp_path: Path) -> None:
    argv = (sys.executable, "-c", "print('no such setting: SUMMITCAST_X'); raise SystemExit(2)")
    probe = Probe("http", Endpoint("127.0.0.1", 9))  # nothing answers there
    program = Supervised("page-p9", Command(argv), probe, tmp_path / "page-p9.log")
    program.start()

    with pytest.raises(ClusterError) as raised:
        program.wait_ready(timeout_s=20)

    assert "page-p9 exited before it served" in raised.value.message
    assert "no such setting: SUMMITCAST_X" in raised.value.message


def test_a_role_that_never_answers_times_out_with_its_log(tmp_path: Path) -> None:
    argv = (
        sys.executable,
        "-c",
        "print('listening soon', flush=True); import time; time.sleep(60)",
    )
    probe = Probe("redis", Endpoint("127.0.0.1", 9))
    program = Supervised("redis", Command(argv), probe, tmp_path / "redis.log")
    program.start()
    try:
        with pytest.raises(ClusterError) as raised:
            program.wait_ready(timeout_s=1)
    finally:
        program.stop(grace_s=1)

    assert "redis not ready after 1 s" in raised.value.message
    assert "listening soon" in raised.value.message
    assert not program.running


def test_the_log_starts_with_the_command_line(tmp_path: Path) -> None:
    command = Command(("true",), {"SUMMITCAST_PORT": "8000"})
    program = Supervised("step", command, None, tmp_path / "step.log")
    program.start()
    program.stop()

    assert program.log.read_text().strip() == "$ SUMMITCAST_PORT=8000 true"
