"""The installed script's stderr: one plain line, however long, when it is not a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from summitcast.storage.database import Database
from tests.cli.installed import assert_one_plain_line, summitcast
from tests.conftest import make_summit

pytestmark = pytest.mark.integration

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE schedule [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<schedule><conference><title>&lol2;</title></conference></schedule>"""


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    assert summitcast("db", "upgrade", "--data-dir", data, cwd=tmp_path).returncode == 0
    return data


def test_billion_laughs_import_is_one_plain_line_without_a_python_repr(tmp_path: Path) -> None:
    data = _data(tmp_path)
    laughs = tmp_path / "laughs.xml"
    laughs.write_bytes(BILLION_LAUGHS)

    done = summitcast(
        "programme", "import", laughs, "--summit", "x", "--data-dir", data, cwd=tmp_path
    )

    assert done.returncode == 2
    assert assert_one_plain_line(done.stderr) == (
        "error: XML line 3: declares the entity “lol”; schedules may not declare entities or "
        "reference external resources"
    )


def test_a_long_message_on_stderr_is_not_wrapped_at_80_columns(tmp_path: Path) -> None:
    data = _data(tmp_path)
    database = Database(f"sqlite:///{data / 'summitcast.db'}")
    try:
        make_summit(database)
    finally:
        database.dispose()
    deep = tmp_path / ("a-folder-with-a-rather-long-name-" * 3)
    deep.mkdir()
    output = deep / "programme-of-the-summit.json"

    done = summitcast(
        "programme", "export", "--summit", "test-summit", "-o", output, "--data-dir", data,
        cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    line = assert_one_plain_line(done.stderr)  # COLUMNS=80, stderr a pipe
    assert len(line) > 80
    assert line == f"Wrote {output} ({output.stat().st_size} bytes)."
