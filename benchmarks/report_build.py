"""Benchmark the attendance report for 50,000 locations over 4 days with 1-minute samples.

Target: ≤ 30 s and ≤ 2 GiB peak RSS on 2 cores, from the presence data to the
PDF, charts, map and CSV files.  Printed with its ratio to a reference measured
in the same run: reading the input once (summing every location's online time).
The input is simulated (`summitcast.reports.simulate`), not timed.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from summitcast.domain.attendance import CountingRule, summarise
from summitcast.reports.build import build_report
from summitcast.reports.simulate import simulate_summit


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--locations", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=4)
    args = parser.parse_args()
    summit = simulate_summit(args.locations, days=args.days)
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"{args.locations} locations × {args.days} days, 1-minute samples"
    )

    began = time.perf_counter()
    total = sum(leave - join for loc in summit.locations for join, leave in loc.online)
    reference = time.perf_counter() - began
    print(f"reference: read the input once ({total} location-seconds): {reference:.2f} s")

    began = time.perf_counter()
    buckets = summit.buckets(CountingRule())
    figures = summarise(buckets, summit.sessions)
    timeline = summit.online_timeline(60)
    data = time.perf_counter() - began
    del buckets
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        files = build_report(
            figures,
            summit_title=summit.title,
            out_dir=Path(tmp),
            sessions=summit.sessions,
            session_titles=summit.session_titles,
            timeline=timeline,
        )
        assert files.pdf.stat().st_size > 0
    drawn = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    whole = data + drawn
    print(f"report data (buckets, figures, {len(timeline)} samples): {data:.1f} s")
    print(f"charts, map, PDF, CSV: {drawn:.1f} s")
    print(
        f"total {whole:.1f} s (target 30 s), {whole / reference:.0f}x reference; "
        f"peak RSS {peak:.0f} MiB (target 2048 MiB, includes the simulated input)"
    )


if __name__ == "__main__":
    main()
