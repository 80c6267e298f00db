"""How a load test's result is shown: a Rich table, and JSON for benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from summitcast.loadtest.run import LoadResult


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value) or "none"
    return str(value)


def print_result(result: LoadResult, console: Console) -> None:
    """Print the summary of a run as one table, with the count samples under it."""
    summary = result.summary()
    table = Table(title="summitcast presence load test", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), _fmt(value))
    console.print(table)
    tail = [s for s in result.samples if s.server is None or s.server != s.expected][-10:]
    if tail:
        console.print("Samples where the server's count differed from the expected one (last 10):")
        for sample in tail:
            server = "—" if sample.server is None else str(sample.server)
            note = f" ({sample.error})" if sample.error else ""
            console.print(
                f"  t={sample.at_s:6.1f}s  server {server}  expected {sample.expected}{note}"
            )


def write_json(result: LoadResult, path: Path) -> None:
    """Write the summary and the count samples as JSON."""
    body = result.summary() | {
        "samples": [
            {"at_s": round(s.at_s, 1), "server": s.server, "expected": s.expected, "error": s.error}
            for s in result.samples
        ]
    }
    path.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
