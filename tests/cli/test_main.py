"""The installed `summitcast` script: exit codes and one plain line for a mistyped command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from summitcast.cli.main import app, main
from tests.cli.installed import BOX_DRAWING, assert_one_plain_line, summitcast

pytestmark = pytest.mark.unit


def test_unknown_command_exits_2_with_one_line(tmp_path: Path) -> None:
    done = summitcast("programme", "exprot", "--summit", "x", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert assert_one_plain_line(done.stderr) == (
        "error: No such command 'exprot'. Did you mean 'export'? (see: summitcast programme --help)"
    )


def test_unknown_option_exits_2_with_one_line(tmp_path: Path) -> None:
    done = summitcast("programme", "export", "--sumit", "x", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    line = assert_one_plain_line(done.stderr)
    assert line.startswith("error: No such option: --sumit")
    assert line.endswith("(see: summitcast programme export --help)")
    assert not (tmp_path / "data").exists()


def test_bad_option_value_exits_2_with_one_line(tmp_path: Path) -> None:
    done = summitcast("serve", "--port", "eighty", cwd=tmp_path)

    assert done.returncode == 2
    line = assert_one_plain_line(done.stderr)
    assert line.startswith("error: Invalid value for '--port' (env var: 'SUMMITCAST_PORT'): ")
    assert "valid integer" in line


def test_no_command_shows_help_and_exits_2(tmp_path: Path) -> None:
    done = summitcast(cwd=tmp_path)

    assert done.returncode == 2
    assert "programme" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_help_exits_0_and_states_the_data_folder(tmp_path: Path) -> None:
    done = summitcast("--help", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "./data" in done.stdout
    assert "SUMMITCAST_DATA_DIR" in done.stdout
    assert not BOX_DRAWING & set(done.stderr)


def test_a_bug_still_raises_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only deliberate errors become one line; a bug must stay visible to whoever reports it.
    @app.command("explode", hidden=True)
    def explode() -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(sys, "argv", ["summitcast", "explode"])
    try:
        with pytest.raises(ZeroDivisionError, match="a bug"):
            main()
    finally:
        app.registered_commands.pop()


class ExecvCalledError(Exception):
    """Raised instead of replacing the test process with uvicorn."""


def test_serve_hands_data_dir_and_database_url_to_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers read Settings from the environment; the options must travel there.
    monkeypatch.setenv("SUMMITCAST_DATA_DIR", "elsewhere")
    monkeypatch.setenv("SUMMITCAST_DATABASE_URL", "sqlite:///elsewhere.db")
    url = f"sqlite:///{tmp_path / 'served.db'}"

    def execv(_path: str, argv: list[str]) -> None:
        raise ExecvCalledError(argv)

    monkeypatch.setattr("os.execv", execv)
    argv = ["summitcast", "serve", "--data-dir", str(tmp_path), "--database-url", url]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(ExecvCalledError) as became:
        main()

    assert became.value.args[0][1:3] == ["-m", "summitcast.cli.serving"]
    assert os.environ["SUMMITCAST_DATA_DIR"] == str(tmp_path)
    assert os.environ["SUMMITCAST_DATABASE_URL"] == url
    assert (tmp_path / "served.db").is_file()  # serve creates (and migrates) its database
