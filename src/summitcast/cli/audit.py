"""`summitcast audit …`: verify a public attendance log, export and check a host's proof."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from summitcast.audit.auditor import (
    check_host_proof,
    export_host_proof,
    proof_root,
    verify_log_file,
)
from summitcast.audit.dispatch import Progress as ProgressCallback
from summitcast.audit.verify import VerificationReport
from summitcast.errors import ValidationError

audit_app = typer.Typer(
    help="Check a published attendance log and host inclusion proofs.", no_args_is_help=True
)

PublicKey = Annotated[
    str | None,
    typer.Option(
        "--public-key",
        "--key",
        envvar="SUMMITCAST_AUDIT_PUBLIC_KEY",
        help="The organiser's Ed25519 public key (base64), from a source you trust.",
    ),
]


def _console(*, stderr: bool = False) -> Console:
    # Created per call so output follows sys.stdout as it is when the command runs
    # (Typer's test runner swaps it); soft wrap keeps long problem lines whole.
    return Console(soft_wrap=True, stderr=stderr)


def parse_bucket(text: str) -> int:
    """Return a bucket start in epoch seconds from digits or an ISO 8601 time with zone."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValidationError(
            f"bucket {text!r} is neither epoch seconds nor an ISO 8601 time", field="bucket"
        ) from error
    if moment.tzinfo is None:
        raise ValidationError(f"bucket time {text!r} needs a time zone (say Z)", field="bucket")
    return int(moment.timestamp())


@contextmanager
def rich_progress(console: Console | None = None) -> Iterator[ProgressCallback]:
    """Yield a `verify_log` progress callback that draws a Rich progress bar."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("verifying", total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def exit_code(report: VerificationReport) -> int:
    """Return the process exit code: 0 verified, 1 problems found."""
    return 0 if report.ok else 1


def render_report(report: VerificationReport, console: Console) -> None:
    """Print the verdict, the problems and the recomputed headline figures."""
    if report.ok and report.final_head is None:
        console.print(
            f"[green]OK[/green]: {report.tree_size} entries and {report.heads_checked} signed "
            "tree heads so far (a live log: no figures published yet)"
        )
    elif report.ok:
        console.print(
            f"[green]OK[/green]: {report.tree_size} entries, {report.heads_checked} signed "
            "tree heads and every published figure recomputed"
        )
    else:
        console.print(f"[red]FAILED[/red]: {len(report.problems)} problem(s)")
        for problem in report.problems:
            console.print(f"  - {problem}", markup=False, highlight=False)
    figures = report.figures
    if figures is None:
        return
    table = Table("figure", "recomputed value")
    if report.final_head is not None:
        table.add_row("entries signed by the final head", str(report.final_head.tree_size))
        table.add_row("final root hash", report.final_head.root_hash.hex())
    table.add_row("buckets", str(figures.buckets))
    peak_at = (
        "-"
        if figures.peak_bucket_start is None
        else datetime.fromtimestamp(figures.peak_bucket_start, UTC).isoformat()
    )
    table.add_row("peak concurrent locations", f"{figures.peak_concurrent} at {peak_at}")
    table.add_row("distinct locations", str(figures.distinct_locations))
    table.add_row("distinct countries", str(figures.distinct_countries))
    table.add_row("average time watched (s)", str(figures.average_seconds_watched))
    for session in figures.sessions:
        table.add_row(f"session {session.slug}: counted locations", str(session.counted_locations))
    console.print(table)


@audit_app.command("verify")
def verify(
    log: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    public_key: PublicKey = None,
    heads: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            readable=True,
            help="A saved heads.json of the live log: check every head chains into LOG.",
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            help="LOG is still being published (live-log.jsonl): no figures record yet.",
        ),
    ] = False,
    no_progress: Annotated[bool, typer.Option(help="Do not draw a progress bar.")] = False,
) -> None:
    """Recompute every published figure from LOG and check its signed tree heads."""
    console = _console()
    if no_progress:
        report = verify_log_file(log, public_key, heads=heads, live=live)
    else:
        with rich_progress(console) as progress:
            report = verify_log_file(log, public_key, progress=progress, heads=heads, live=live)
    render_report(report, console)
    code = exit_code(report)
    if code:
        # The report above is the answer; stderr gets the one line a script or a log shows.
        count = len(report.problems)
        _console(stderr=True).print(
            f"error: {log} did not verify ({count} problem{'s' if count != 1 else ''})",
            markup=False,
            highlight=False,
        )
    raise typer.Exit(code)


@audit_app.command("prove")
def prove(
    log: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    pseudonym: Annotated[str, typer.Option(help="Your location's pseudonym (32 hex digits).")],
    bucket: Annotated[
        str, typer.Option(help="Bucket start: epoch seconds or ISO time, e.g. 2024-07-17T12:00Z.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the proof.")],
) -> None:
    """Write the inclusion proof of one pseudonym in one bucket, with the final signed head."""
    document = export_host_proof(log, pseudonym, parse_bucket(bucket))
    output.write_text(document + "\n", encoding="utf-8")
    _console().print(f"Wrote the proof for {pseudonym} to {output}.", markup=False)


@audit_app.command("check-proof")
def check_proof(
    proof: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    pseudonym: Annotated[str, typer.Option(help="Your location's pseudonym (32 hex digits).")],
    root: Annotated[
        str | None,
        typer.Option(help="The published root hash (hex) the proof's head must carry."),
    ] = None,
    public_key: PublicKey = None,
) -> None:
    """Check an inclusion proof for your pseudonym against the published head."""
    console = _console()
    refusal = _console(stderr=True)  # NOT INCLUDED is a failure: one line on stderr, exit 1
    result = check_host_proof(proof.read_text(encoding="utf-8"), pseudonym, public_key)
    if result.ok and root is not None:
        published = proof_root(proof.read_text(encoding="utf-8"))
        if published != root.strip().lower():
            refusal.print(
                f"[red]NOT INCLUDED[/red]: the proof's head has root {published}, "
                f"not the published root {root.strip().lower()}"
            )
            raise typer.Exit(1)
    if result.ok:
        console.print(f"[green]INCLUDED[/green]: {result.message}")
        if public_key is None:
            console.print(
                "[yellow]note[/yellow]: no --public-key given, so the head's signature "
                "was not checked"
            )
        raise typer.Exit(0)
    refusal.print(f"[red]NOT INCLUDED[/red]: {escape(result.message)}", highlight=False)
    raise typer.Exit(1)
