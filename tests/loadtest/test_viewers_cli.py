"""`summitcast loadtest viewers` as a person runs it: the command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port
from tests.loadtest.test_viewers import MASTER, LiveOrigin, edges

pytestmark = pytest.mark.e2e


def _viewers(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "summitcast.cli", "loadtest", "viewers", *args]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def test_bad_url_exits_2_with_one_line() -> None:
    result = _viewers("--url", "ftp://127.0.0.1:1", "--master", MASTER, "--duration", "2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: 'ftp://127.0.0.1:1' is not an http:// URL with a host"
    ]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--mix", "720p", "error: --mix entry '720p' is not NAME=WEIGHT (weight >= 0)"),
        ("--origin-log", "/nonexistent/access.log", "error: --origin-log: no such file"),
        ("--viewers", "0", "error: Invalid value for '--viewers'"),
    ],
)
def test_bad_option_exits_2_with_one_line(option: str, value: str, message: str) -> None:
    result = _viewers("--url", "http://127.0.0.1:1", "--master", MASTER, option, value)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(message)


def test_no_reachable_edge_exits_2_without_a_traceback() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = _viewers("--url", nowhere, "--master", MASTER, "--duration", "2")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: no edge served {MASTER} ({nowhere}: connect")


def test_short_run_prints_the_report_and_writes_json(tmp_path: Path) -> None:
    log = tmp_path / "origin.log"
    log.write_text("99.000 200 GET /hls/demo/1/enc-a/720p/seg_1.m4s - 3000\n")  # long before
    # The test's one edge stands for the origin too: its requests, in the nginx format.
    origin = LiveOrigin(access_log=log)
    out = tmp_path / "viewers.json"
    nowhere = f"http://127.0.0.1:{free_port()}"
    with edges(origin, 1) as servers:
        started = time.time()
        args = ["--url", f"{servers[0].url},{nowhere}", "--master", MASTER, "--viewers", "6"]
        args += ["--duration", "3", "--ramp", "0", "--mix", "720p=1,audio=1", "--json", str(out)]
        args += ["--origin-log", str(log), "--progress", "1"]
        result = _viewers(*args)
        ended = time.time()
    assert result.returncode == 0, result.stderr
    assert "summitcast viewer load test" in result.stdout
    assert "stalls per viewer hour" in result.stdout
    progress = [line for line in result.stdout.splitlines() if line.startswith("at s ")]
    assert len(progress) >= 2
    assert progress[-1].split("  ")[1] == "playing 6"
    figures = json.loads(out.read_text())
    assert figures["viewers"] == figures["viewers_playing"] == 6
    assert figures["rungs"] == {"720p": 3, "audio": 3}
    assert figures["stalls"] == 0
    assert list(figures["edges_unreachable_at_start"]) == [nowhere]
    # Viewers dealt to the dead edge moved to the live one at their first request.
    assert figures["edge_switches"] == 3
    assert figures["edges"][servers[0].url]["bytes"] > 0
    assert figures["edges"][nowhere]["bytes"] == 0
    assert figures["segment_ms"]["p50"] is not None
    assert 2.5 < figures["duration_s"] < ended - started
    origin_figures = figures["origin"]
    master = origin_figures.pop("master")
    # One master per viewer; a request timed out on a loaded machine is asked again.
    assert master["segment_requests"] == 0
    assert master["playlist_requests"] >= 6
    assert set(origin_figures) == {"enc-a/720p", "enc-a/audio_en", "enc-a/audio_only_en"}
    # No cache in front: each of the 3 viewers of a rendition asked the origin for each
    # segment once (the newest few were not yet asked for by every viewer).
    for figure in origin_figures.values():
        assert 2.0 < figure["requests_per_segment"] <= 3.0
        assert figure["playlist_requests_per_s"] > 2.0
