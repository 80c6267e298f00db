"""Run the installed `summitcast` console script in a subprocess, as a person's shell would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
# Box drawing (U+2500-U+257F): Rich's panels and tracebacks, which users must not get.
BOX_DRAWING = {chr(c) for c in range(0x2500, 0x2580)}


def script() -> str:
    """The path of the console script pip installed next to this interpreter."""
    found = shutil.which("summitcast", path=str(BIN))
    assert found is not None, f"no summitcast console script in {BIN}"
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without SUMMITCAST_* settings of the test run, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUMMITCAST_")}
    return env | {"PYTHONUNBUFFERED": "1", "COLUMNS": "80"} | extra


def summitcast(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `summitcast ARGS` in cwd and return what it did."""
    return subprocess.run(
        [script(), *map(str, args)],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_plain_line(stderr: str) -> str:
    """Check stderr is one line with no traceback and no box drawing; return it."""
    assert "Traceback" not in stderr, stderr
    assert not BOX_DRAWING & set(stderr), stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]
