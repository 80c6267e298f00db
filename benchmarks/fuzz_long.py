"""The fuzzers of tests/fuzz with long budgets, bounded in time, on SQLite and PostgreSQL.

Prints, per fuzzer and database, how many requests (or files) were tried, how many were
answered 500 or worse (or raised), and how many tracebacks were logged. There is no ratio
here: a fuzzer's figure is a count of tries and of failures, and no reference run would
make it comparable between machines. The examples are random (not derandomized as in
`make test`); a failure prints Hypothesis' reproduction blob.

    .venv/bin/python benchmarks/fuzz_long.py --minutes 10
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import schemathesis
from schemathesis.python.asgi import shutdown_lifespans
from tests.fuzz.conftest import Run, World, open_world
from tests.fuzz.test_api_schema import fuzz_operations
from tests.fuzz.test_forms import fuzz_forms
from tests.fuzz.test_importers import fuzz_imports, fuzz_reader
from tests.fuzz.test_path_parameters import fuzz_path_parameters


class Tracebacks(logging.Handler):
    """Counts log records that carry a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Count the record if it has exception information."""
        if record.exc_info:
            self.count += 1


def api(world: World, run: Run) -> None:
    """Schemathesis over the OpenAPI document."""
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", world.app)
    try:
        fuzz_operations(schema, world.organiser, world.database, run)
    finally:
        shutdown_lifespans()


# name, examples (per operation, per form, or in all), function
FUZZERS: list[tuple[str, int, Callable[[World, Run], None]]] = [
    ("API (schemathesis)", 300, api),
    ("path parameters", 5_000, fuzz_path_parameters),
    ("forms", 150, fuzz_forms),
    ("schedule imports", 1_000, fuzz_imports),
]


def main() -> int:
    """Run every fuzzer on each database within the time given; 1 if anything failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="whole run (default 10)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every example count")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tracebacks = Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    backends = args.backends.split(",")
    # The reader needs no database: a share of the time of its own.
    shares = len(backends) * len(FUZZERS) + 1
    share_s = args.minutes * 60 / shares
    started = time.monotonic()
    rows: list[tuple[str, str, Run, int, float]] = []

    def measure(backend: str, name: str, run: Run, go: Callable[[], None]) -> None:
        before, begun = tracebacks.count, time.monotonic()
        run.until = begun + share_s
        go()
        rows.append((backend, name, run, tracebacks.count - before, time.monotonic() - begun))
        row = rows[-1]
        print(
            f"{backend:10} {name:20} {run.sent:8} tried {len(run.failures):5} failed "
            f"{row[3]:5} tracebacks {row[4]:7.1f} s",
            flush=True,
        )

    reader = Run(examples=int(20_000 * args.scale), randomize=True)
    measure("-", "schedule reader", reader, lambda: fuzz_reader(reader))
    for backend in backends:
        with tempfile.TemporaryDirectory() as folder, open_world(backend, Path(folder)) as world:
            for name, examples, fuzzer in FUZZERS:
                run = Run(examples=max(1, int(examples * args.scale)), randomize=True)
                measure(backend, name, run, lambda fuzzer=fuzzer, run=run: fuzzer(world, run))

    sent = sum(row[2].sent for row in rows)
    failed = sum(len(row[2].failures) for row in rows)
    logged = sum(row[3] for row in rows)
    print(
        f"total: {sent} tried, {failed} failed, {logged} tracebacks logged, "
        f"{time.monotonic() - started:.0f} s (no ratio: a fuzzer's figure is a count)"
    )
    for backend, name, run, _logged, _seconds in rows:
        for failure in run.failures[:10]:
            print(f"FAILED {backend} {name}: {failure}")
    return 1 if failed or logged else 0


if __name__ == "__main__":
    sys.exit(main())
