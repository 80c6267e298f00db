"""`summitcast deploy render/check` as people run them: the installed command, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO

pytestmark = pytest.mark.e2e

SUMMITCAST = str(Path(sys.executable).parent / "summitcast")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed summitcast command with args."""
    return subprocess.run(
        [SUMMITCAST, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_deploy_render_then_check_succeed(tmp_path: Path, nginx: str) -> None:
    out = tmp_path / "out"

    rendered = run("deploy", "render", str(REPO / "deploy/loopback-small.toml"), "--out", str(out))
    checked = run("deploy", "check", str(out), "--nginx", nginx)

    assert rendered.returncode == 0, rendered.stderr
    assert "Rendered loopback-small" in rendered.stdout
    assert str(out / "nginx" / "edge-e1.conf") in rendered.stdout
    assert (out / "env" / "a.env").stat().st_mode & 0o777 == 0o600
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count("ok ") == 5


def test_deploy_check_names_the_failing_file_and_exits_1(tmp_path: Path, nginx: str) -> None:
    out = tmp_path / "out"
    run("deploy", "render", str(REPO / "deploy/loopback-small.toml"), "--out", str(out))
    origin = out / "nginx" / "origin-b.conf"
    origin.write_text(origin.read_text().replace("keepalive 16;", "keepalive sixteen;"))

    checked = run("deploy", "check", str(out), "--nginx", nginx)

    assert checked.returncode == 1
    assert f"FAILED {origin}: " in checked.stderr
    assert 'invalid value "sixteen"' in " ".join(checked.stderr.split())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x\n', "not valid TOML"),
        ('name = "x"\nroot = "r"\nbase_url = "http://a"\n', "the topology: balancer is missing"),
    ],
)
def test_deploy_render_refuses_bad_input_in_one_line(
    tmp_path: Path, text: str, message: str
) -> None:
    topology = tmp_path / "t.toml"
    topology.write_text(text)

    result = run("deploy", "render", str(topology), "--out", str(tmp_path / "out"))

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {topology}: ")
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_deploy_check_of_a_missing_folder_exits_2(tmp_path: Path) -> None:
    result = run("deploy", "check", str(tmp_path / "nothing"))

    assert result.returncode == 2
    assert "no such folder" in result.stderr
