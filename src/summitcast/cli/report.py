"""`summitcast report …`: build the attendance report from a published log, or for a demo summit."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from summitcast.audit.log import read_published_figures, write_attendance_log_from_buckets
from summitcast.cli.data import DatabaseUrlOption, DataDirOption, open_database, settings_for
from summitcast.config import Settings
from summitcast.domain.attendance import AttendanceFigures, CountingRule, SessionWindow
from summitcast.reports.build import ReportFiles, build_report
from summitcast.reports.simulate import simulate_summit

report_app = typer.Typer(help="Attendance reports (PDF, charts, map, CSV).", no_args_is_help=True)


def _build(
    console: Console,
    figures: AttendanceFigures,
    sessions: Sequence[SessionWindow],
    titles: Mapping[str, str],
    title: str,
    out: Path,
    timeline: list[tuple[int, int]] | None = None,
) -> ReportFiles:
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        task = bar.add_task("building the report", total=6)

        def update(step: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"drawn: {step}")

        return build_report(
            figures,
            summit_title=title,
            out_dir=out,
            sessions=sessions,
            session_titles=titles,
            timeline=timeline,
            progress=update,
        )


def _summary(console: Console, files: ReportFiles) -> None:
    console.print(f"Wrote the report to {files.out_dir}:", markup=False)
    for path in (files.pdf, files.timeline_csv, files.countries_csv, files.sessions_csv):
        console.print(f"  {path.name}", markup=False)
    if files.map_png is None:
        console.print(f"[yellow]note[/yellow]: {files.html['map_note']}")


@report_app.command("build")
def build(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the report.")],
    summit: Annotated[
        str | None, typer.Option(help="Slug of a summit in the database (its recorded counts).")
    ] = None,
    log: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="A published log instead.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Summit title; default its slug.")] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Build the report of a summit (--summit) or of the figures published in a log (--log)."""
    console = Console(soft_wrap=True)
    if (summit is None) == (log is None):
        raise typer.BadParameter("give either --summit or --log")
    if summit is not None:
        _build_summit(console, summit, output, settings_for(data_dir, database_url))
        return
    assert log is not None
    header, figures = read_published_figures(log)
    files = _build(console, figures, header.sessions, {}, title or header.summit, output)
    _summary(console, files)


def _build_summit(console: Console, slug: str, output: Path, settings: Settings) -> None:
    """Build a summit's report from the database with the service the web page uses."""
    from summitcast.services import programme
    from summitcast.services.reports import EXACT_CSV, build_attendance_report

    with (
        open_database(settings, create=False) as database,
        database.session() as db,
        Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar,
    ):
        task = bar.add_task("counting attendance", total=6)

        def update(step: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"drawn: {step}")

        built = build_attendance_report(
            db, programme.get_summit(db, slug), settings, output, progress=update
        )
    _summary(console, built.files)
    console.print(f"  {EXACT_CSV} (exact per-country counts: organisers only)", markup=False)


@report_app.command("demo")
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for log and report.")],
    locations: Annotated[int, typer.Option(min=1, help="Simulated watch locations.")] = 3000,
    days: Annotated[int, typer.Option(min=1, max=14)] = 2,
    seed: Annotated[int, typer.Option(help="Same seed, same summit.")] = 20240717,
) -> None:
    """Simulate a summit, write its signed attendance log and build its report."""
    console = Console(soft_wrap=True)
    summit = simulate_summit(locations, days=days, seed=seed)
    rule = CountingRule()
    output.mkdir(parents=True, exist_ok=True)
    buckets = summit.buckets(rule)
    hidden = frozenset(loc.location_id for loc in summit.locations if loc.privacy == "hidden")
    # A demo key and secret derived from the seed: never use these for a real summit.
    key = Ed25519PrivateKey.from_private_bytes(seed.to_bytes(32, "big"))
    secret = f"demo audit secret {seed}".encode()
    log_path = output / "attendance-log.jsonl"
    # Heads are dated a minute apart after the last session: the same seed, the same log.
    ticks = itertools.count()
    after = max(s.end for s in summit.sessions)
    with (
        log_path.open("w", encoding="utf-8") as out,
        Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar,
    ):
        task = bar.add_task("writing the log", total=len(buckets))
        figures, head = write_attendance_log_from_buckets(
            out,
            summit=summit.slug,
            buckets=buckets,
            hidden=hidden,
            sessions=summit.sessions,
            rule=rule,
            audit_secret=secret,
            signing_key=key,
            clock=lambda: after + timedelta(minutes=next(ticks)),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    files = _build(
        console,
        figures,
        summit.sessions,
        summit.session_titles,
        summit.title,
        output,
        timeline=summit.online_timeline(),
    )
    (output / "published-head.json").write_text(json.dumps(head.to_json(), indent=2) + "\n")
    _summary(console, files)
    console.print(f"  {log_path.name} (check it: summitcast audit verify {log_path})", markup=False)
