"""One data location: commands read the demo's folder and never make a database by accident."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from tests.cli.installed import assert_one_plain_line, clean_env, summitcast
from tests.conftest import scratch_postgres
from tests.interchange.counting import FIXTURES

IMPORT = FIXTURES / "frab-31c3-trimmed.xml"
HOW_TO_FIX = (
    "start `summitcast demo` or run `summitcast db upgrade` there first, "
    "or point --data-dir (SUMMITCAST_DATA_DIR) at the folder that holds one"
)
DATA_COMMANDS = {
    "programme export": ["programme", "export", "--summit", "demo-summit"],
    "programme import": ["programme", "import", str(IMPORT), "--summit", "imported"],
    "user create": ["user", "create", "someone@example.org", "--password", "long enough secret"],
    "locations bulk-create": [
        *("locations", "bulk-create", "--summit", "demo-summit"),
        *("--count", "3", "--out", "secrets.jsonl"),
    ],
    "report build": ["report", "build", "--summit", "demo-summit", "-o", "report"],
}


@pytest.mark.e2e
def test_export_next_to_the_demo_needs_no_flags(tmp_path: Path) -> None:
    made = summitcast("demo", "--no-serve", cwd=tmp_path, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"data in {tmp_path / 'data'} (delete it to start over)" in made.stdout

    done = summitcast("programme", "export", "--summit", "demo-summit", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    conference = json.loads(done.stdout)["schedule"]["conference"]
    assert conference["title"] == "Summit of Many Rooms (demo)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.integration
@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_data_command_on_an_empty_folder_exits_2_and_creates_nothing(
    tmp_path: Path, command: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    work = tmp_path / "work"
    work.mkdir()

    done = summitcast(*DATA_COMMANDS[command], "--data-dir", empty, cwd=work)

    assert done.returncode == 2
    assert assert_one_plain_line(done.stderr) == (
        f"error: no summitcast database in {empty} (summitcast.db is not there): {HOW_TO_FIX}"
    )
    assert list(empty.iterdir()) == []
    assert list(work.iterdir()) == []


@pytest.mark.integration
def test_data_dir_from_the_environment_that_does_not_exist_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"

    done = summitcast(
        "programme", "export", "--summit", "demo-summit",
        cwd=tmp_path, env=clean_env(SUMMITCAST_DATA_DIR=str(missing)),
    )  # fmt: skip

    assert done.returncode == 2
    assert f"no summitcast database in {missing} " in assert_one_plain_line(done.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_sqlite_file_of_another_program_is_refused_unchanged(tmp_path: Path) -> None:
    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    db.close()
    before = other.read_bytes()

    done = summitcast(
        "programme", "export", "--summit", "x", "--database-url", f"sqlite:///{other}",
        cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 2
    assert assert_one_plain_line(done.stderr) == (
        f"error: {other} holds no summitcast database (no schema version in it): "
        "run `summitcast db upgrade` with this URL first, or give another --database-url"
    )
    assert other.read_bytes() == before


@pytest.mark.integration
@pytest.mark.postgres
def test_empty_postgres_database_is_refused_and_left_empty(tmp_path: Path) -> None:
    with scratch_postgres("cli_empty") as url:
        done = summitcast(
            "programme", "export", "--summit", "x", "--database-url", url, cwd=tmp_path
        )

        with psycopg.connect(url) as db:
            tables = db.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()

    assert done.returncode == 2
    line = assert_one_plain_line(done.stderr)
    assert line.startswith("error: postgresql://")
    assert line.endswith(
        " holds no summitcast database (no schema version in it): "
        "run `summitcast db upgrade` with this URL first, or give another --database-url"
    )
    assert tables == (0,)


@pytest.mark.integration
def test_db_upgrade_creates_the_folder_then_commands_find_it(tmp_path: Path) -> None:
    data = tmp_path / "festival"

    upgraded = summitcast("db", "upgrade", "--data-dir", data, cwd=tmp_path)
    done = summitcast("programme", "export", "--summit", "nope", "--data-dir", data, cwd=tmp_path)

    assert upgraded.returncode == 0, upgraded.stderr
    assert (data / "summitcast.db").is_file()
    assert done.returncode == 2
    assert assert_one_plain_line(done.stderr) == "error: There is no summit 'nope'."
