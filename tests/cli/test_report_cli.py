"""`summitcast report demo | build`: a simulated summit's log and report, verified end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from summitcast.cli.main import app

pytestmark = pytest.mark.unit
runner = CliRunner()


def test_report_demo_then_verify_and_build_agree(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    made = runner.invoke(app, ["report", "demo", "-o", str(demo), "--locations", "300"])
    assert made.exit_code == 0, made.output
    log = demo / "attendance-log.jsonl"
    assert sorted(p.name for p in demo.iterdir() if p.suffix != ".png") == [
        "attendance-log.jsonl",
        "attendance-report.pdf",
        "countries.csv",
        "published-head.json",
        "sessions.csv",
        "timeline.csv",
    ]
    verified = runner.invoke(app, ["audit", "verify", str(log), "--no-progress"])
    assert verified.exit_code == 0, verified.output
    rebuilt = tmp_path / "rebuilt"
    built = runner.invoke(app, ["report", "build", "--log", str(log), "-o", str(rebuilt)])
    assert built.exit_code == 0, built.output
    for name in ("countries.csv", "sessions.csv"):
        # The log has no session titles, so only the slug column may differ.
        mine = [line.split(",")[0] for line in (rebuilt / name).read_text().splitlines()]
        theirs = [line.split(",")[0] for line in (demo / name).read_text().splitlines()]
        assert mine == theirs
    assert (rebuilt / "countries.csv").read_text() == (demo / "countries.csv").read_text()


def test_report_build_unfinished_log_is_refused(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    assert (
        runner.invoke(app, ["report", "demo", "-o", str(demo), "--locations", "50"]).exit_code == 0
    )
    lines = (demo / "attendance-log.jsonl").read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:-1]))
    result = runner.invoke(app, ["report", "build", "--log", str(cut), "-o", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert str(result.exception) == f"{cut}: not a finished attendance log (header … figures)"
