"""The command line: user create, programme import/export, db upgrade, clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from summitcast.cli.main import main
from summitcast.services import programme
from summitcast.storage.database import Database
from tests.conftest import PASSWORD
from tests.interchange.counting import FIXTURES, count_xml

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database: Database, tmp_path: Path) -> Database:
    """Point the CLI at the database under test."""
    monkeypatch.setenv("SUMMITCAST_DATABASE_URL", database.url)
    monkeypatch.setenv("SUMMITCAST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SUMMITCAST_NEW_PASSWORD", PASSWORD)
    return database


def run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run `summitcast ARGS` in-process; return its exit code."""
    monkeypatch.setattr(sys, "argv", ["summitcast", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_import_then_export_round_trip(
    cli_env: Database,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fixture = FIXTURES / "summit-non-latin.xml"
    assert run(monkeypatch, "programme", "import", str(fixture), "--summit", "cli-summit") == 0
    out = tmp_path / "export.json"
    assert (
        run(
            monkeypatch,
            "programme",
            "export",
            "--summit",
            "cli-summit",
            "--format",
            "json",
            "-o",
            str(out),
        )
        == 0
    )

    document = json.loads(out.read_text("utf-8"))
    events = [
        e
        for d in document["schedule"]["conference"]["days"]
        for r in d["rooms"].values()
        for e in r
    ]
    assert len(events) == count_xml("summit-non-latin.xml").items
    assert "Imported into cli-summit" in capsys.readouterr().out


def test_import_of_bad_file_exits_2_and_changes_nothing(
    cli_env: Database,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schedule": {"version": "1", "conference": {"days": "x"}}}')
    code = run(monkeypatch, "programme", "import", str(bad), "--summit", "cli-summit")
    assert code == 2
    assert "error:" in capsys.readouterr().err
    with cli_env.session() as db:
        assert programme.list_summits(db) == []


def test_import_of_oversized_file_exits_2(
    cli_env: Database,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    assert run(monkeypatch, "programme", "import", str(big), "--summit", "x-summit") == 2
    assert "MiB" in capsys.readouterr().err


def test_user_create_with_role_then_login_works(
    cli_env: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        run(
            monkeypatch,
            "programme",
            "import",
            str(FIXTURES / "frab-31c3-trimmed.xml"),
            "--summit",
            "cli-summit",
        )
        == 0
    )
    assert (
        run(
            monkeypatch,
            "user",
            "create",
            "host@example.org",
            "--role",
            "producer",
            "--summit",
            "cli-summit",
        )
        == 0
    )
    from summitcast.services import accounts

    with cli_env.session() as db:
        user = accounts.authenticate(db, email="host@example.org", password=PASSWORD)
        summit = programme.get_summit(db, "cli-summit")
        roles = accounts.roles_in(db, user_id=user.id, summit_id=summit.id)
    assert [r.value for r in roles] == ["producer"]


def test_user_create_for_unknown_summit_exits_2(
    cli_env: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        monkeypatch, "user", "create", "x@example.org", "--role", "organiser", "--summit", "nope"
    )
    assert code == 2
    assert "no summit 'nope'" in capsys.readouterr().err


def test_db_upgrade_reports_up_to_date(
    cli_env: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, "db", "upgrade") == 0
    out = capsys.readouterr().out
    assert "up to date" in out
    assert "@" not in out.split("(")[-1] or "***@" in out
