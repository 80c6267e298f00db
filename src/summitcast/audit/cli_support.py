"""Plain functions behind `summitcast audit …`: the CLI parses arguments, these do the rest."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from summitcast.audit.dispatch import Progress as ProgressCallback
from summitcast.audit.live import PublishedHead
from summitcast.audit.log import read_log
from summitcast.audit.proofs import (
    InclusionProof,
    ProofCheck,
    inclusion_proof_for,
    verify_inclusion_proof,
)
from summitcast.audit.records import SignedTreeHead
from summitcast.audit.verify import VerificationReport, check_published_heads, verify_log
from summitcast.errors import ValidationError

__all__ = [
    "check_host_proof",
    "exit_code",
    "export_host_proof",
    "parse_public_key",
    "proof_root",
    "read_published_heads",
    "render_report",
    "rich_progress",
    "verify_log_file",
]


def parse_public_key(text: str) -> bytes:
    """Return a raw Ed25519 public key from base64 text, or raise ValidationError."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValidationError("the public key is not base64", field="public_key") from error
    if len(key) != 32:
        raise ValidationError("the public key is not 32 bytes of Ed25519", field="public_key")
    return key


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


def read_published_heads(path: Path) -> list[PublishedHead]:
    """Return the heads of a saved heads.json, or raise ValidationError saying why not."""
    try:
        document = json.loads(path.read_bytes())
        records = document["heads"] if isinstance(document, dict) else document
        if not isinstance(records, list):
            raise TypeError("heads is not a list")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise ValidationError(f"{path.name} is not a heads.json document: {error}") from error
    return [PublishedHead.from_json(record) for record in records]


def verify_log_file(
    path: Path,
    expected_public_key: str | None = None,
    *,
    progress: ProgressCallback | None = None,
    heads: Path | None = None,
    live: bool = False,
) -> VerificationReport:
    """Verify the log at `path`, the key given as base64 text as printed in the header.

    With `heads` (a saved heads.json), also check that every head published during
    the event chains into this log.
    """
    key = None if expected_public_key is None else parse_public_key(expected_public_key)
    published = None if heads is None else read_published_heads(heads)
    report = verify_log(path, key, progress=progress, live=live)
    if published is None:
        return report
    problems = [*report.problems, *check_published_heads(report, published)]
    return dataclasses.replace(report, ok=not problems, problems=problems)


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


def export_host_proof(log_path: Path, pseudonym: str, bucket_start: int) -> str:
    """Return JSON a host can keep: their inclusion proof and the final signed head."""
    log = read_log(log_path)
    proof = inclusion_proof_for(log, pseudonym, bucket_start)
    document = {"proof": proof.to_json(), "head": log.final_head.to_json()}
    return json.dumps(document, indent=2)


def proof_root(document: str) -> str:
    """Return the hex root hash of the head inside a proof document."""
    try:
        return str(json.loads(document)["head"]["root_hash"]).lower()
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValidationError(f"not an inclusion proof document: {error}") from error


def check_host_proof(document: str, pseudonym: str, public_key: str | None = None) -> ProofCheck:
    """Check a document from `export_host_proof` for the host's own pseudonym."""
    try:
        data = json.loads(document)
        proof = InclusionProof.from_json(data["proof"])
        head = SignedTreeHead.from_json(data["head"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValidationError(f"not an inclusion proof document: {error}") from error
    key = None if public_key is None else parse_public_key(public_key)
    return verify_inclusion_proof(pseudonym, proof, head, key)
