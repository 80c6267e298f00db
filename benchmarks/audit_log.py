"""Benchmark the attendance log: append+sign one 5-minute bucket, and verify a whole log.

Targets: append a bucket of 50,000 present locations and sign the head in ≤ 2 s;
verify a 4-day log (1,150 buckets of 50,000) in ≤ 60 s.  Each time is printed with
its ratio to plain hashlib SHA-256 over the same number of leaves, measured in the
same run.  `--buckets` smaller than 1,150 verifies a shorter log and extrapolates.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from summitcast.audit.log import AttendanceLogWriter, LogEntry, pseudonym
from summitcast.audit.verify import verify_log
from summitcast.domain.attendance import CountingRule, SessionWindow

START = datetime(2024, 7, 17, tzinfo=UTC)
FULL_BUCKETS = 1150


def _reference(leaves: int) -> float:
    """Return seconds for one plain SHA-256 per leaf-sized input."""
    data = [
        f'{{"bucket_start":1721174400,"country":"DE","pseudonym":"{i:032x}"}}'.encode()
        for i in range(leaves)
    ]
    sha = hashlib.sha256
    began = time.perf_counter()
    for item in data:
        sha(item).digest()
    return time.perf_counter() - began


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--locations", type=int, default=50_000)
    parser.add_argument("--buckets", type=int, default=FULL_BUCKETS)
    parser.add_argument("--append-rounds", type=int, default=5)
    parser.add_argument(
        "--workers", type=int, default=None, help="verify_log workers (default: its own choice)"
    )
    args = parser.parse_args()

    rng = random.Random(1)
    countries = ["DE", "FR", "BR", "IN", "US", "NG", "KE", "PH", "MX", "ID", "ZZ"]
    secret = os.urandom(32)
    entries = [
        LogEntry(pseudonym(secret, f"loc-{i}"), rng.choice(countries))
        for i in range(args.locations)
    ]
    rule = CountingRule()
    session = SessionWindow("all", START, START + timedelta(seconds=300 * args.buckets))
    key = Ed25519PrivateKey.generate()
    ref = _reference(args.locations)
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, Python, "
        f"{args.locations} locations × {args.buckets} buckets"
    )
    print(f"reference: SHA-256 over {args.locations} leaves: {ref:.3f} s")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "attendance.jsonl"
        with path.open("w", encoding="utf-8") as out:
            writer = AttendanceLogWriter(
                out, summit="bench", rule=rule, sessions=[session], signing_key=key
            )
            append_times = []
            base = int(START.timestamp())
            for b in range(args.buckets):
                began = time.perf_counter()
                writer.append_bucket(base + 300 * b, entries)
                writer.sign_head()
                if b < args.append_rounds:
                    append_times.append(time.perf_counter() - began)
            writer.finish()
        append = sorted(append_times)[len(append_times) // 2]
        print(
            f"append+sign one bucket: {append:.3f} s (median of {len(append_times)}), "
            f"target 2 s, {append / ref:.1f}x reference"
        )
        size = path.stat().st_size
        began = time.perf_counter()
        report = verify_log(path, None, workers=args.workers)
        verify = time.perf_counter() - began
        assert report.ok, report.problems[:3]
        leaves = args.locations * args.buckets
        full = verify * FULL_BUCKETS / args.buckets
        print(
            f"verify {args.buckets} buckets ({leaves} entries, {size / 1e6:.0f} MB): "
            f"{verify:.1f} s, "
            f"{verify / (ref * args.buckets):.1f}x reference"
        )
        label = "full log" if args.buckets == FULL_BUCKETS else "EXTRAPOLATED (linear)"
        print(f"{label} to {FULL_BUCKETS} buckets: {full:.0f} s (target 60 s)")


if __name__ == "__main__":
    main()
