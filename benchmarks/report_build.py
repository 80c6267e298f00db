"""Benchmark the attendance report for 50,000 locations over 4 days with 1-minute samples.

Target: ≤ 30 s and ≤ 2 GiB peak RSS on 2 cores, from the presence data to the
PDF, charts, map and CSV files.  Printed with its ratio to a reference measured
in the same run: reading the input once (summing every location's online time).
The input is simulated (`summitcast.reports.simulate`), not timed.

`--from-database` measures what the product runs instead: the simulated summit is
seeded (not timed) into a real SQLite file and into a temporary PostgreSQL database
(created and dropped here), as two workers' packed `attendance_counts` rows, 1-minute
presence samples and 50,000 locations; then a fresh child process per database runs
`build_attendance_report` and prints its time and peak RSS, against a reference in the
same child: reading every stored count once.

`--from-database --worst-case` seeds instead every location present (30 heartbeats)
in every 5-minute bucket of every day, with sessions covering whole days: 50,000 ×
1,152 buckets = 57.6 M presences, the case the 30 s / 2 GiB target must hold for.
Publishing is not timed then (benchmarks/audit_log.py measures that log).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import patch

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.orm import Session as DbSession

from summitcast.config import Settings
from summitcast.domain.attendance import CountingRule, summarise
from summitcast.reports.build import build_report
from summitcast.reports.simulate import HEARTBEAT_SECONDS, SimulatedSummit, simulate_summit
from summitcast.services import programme, reports
from summitcast.services.attendance import (
    AttendanceData,
    attendance_data,
    publish_attendance,
    store_bucket_counts,
)
from summitcast.services.reports import build_attendance_report
from summitcast.storage.database import Database, make_engine
from summitcast.storage.tables import AttendanceCounts, Location, PresenceSample, Summit

POSTGRES_ADMIN_URL = os.environ.get(
    "SUMMITCAST_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BUCKET_SECONDS = 300
WRITERS = 2  # two uvicorn workers, each holding its own locations' connections


def per_bucket_counts(
    summit: SimulatedSummit, ids: list[int]
) -> dict[int, list[tuple[array[int], array[int]]]]:
    """Return bucket start → per writer (location ids, heartbeats), as the recorders flush them."""
    size, step = BUCKET_SECONDS, HEARTBEAT_SECONDS
    buckets: dict[int, list[tuple[array[int], array[int]]]] = {}
    for index, location in enumerate(summit.locations):
        writer = index % WRITERS
        location_id = ids[index]
        for join, leave in location.online:
            for start in range(join - join % size, leave, size):
                lo, hi = max(start, join), min(start + size, leave)
                first = join + -(-(lo - join) // step) * step  # first beat at or after lo
                if first < hi:
                    pairs = buckets.get(start)
                    if pairs is None:
                        pairs = buckets[start] = [(array("i"), array("I")) for _ in range(WRITERS)]
                    pairs[writer][0].append(location_id)
                    pairs[writer][1].append((hi - first - 1) // step + 1)
    return buckets


def seed(url: str, summit: SimulatedSummit) -> int:
    """Write the simulated summit into a migrated database; returns the stored bytes of counts."""
    database = Database(url)
    database.upgrade()
    first = min(s.start for s in summit.sessions)
    last = max(s.end for s in summit.sessions)
    with database.session() as db:
        made = programme.create_summit(
            db,
            programme.SummitInput(
                slug=summit.slug, title=summit.title, time_zone="UTC",
                start_date=first.date(), end_date=last.date(),
            ),
        )  # fmt: skip
        for window in summit.sessions:
            programme.add_session(
                db,
                made,
                programme.SessionInput(
                    title=summit.session_titles[window.slug],
                    planned_start=window.start,
                    planned_end=window.end,
                ),
            )
        rows = [
            {
                "summit_id": made.id, "public_id": loc.location_id, "label": f"Location {n}",
                "country": loc.country, "city": "", "kind": "other", "expected_audience": 10,
                "contact": "", "privacy_level": loc.privacy, "status": "approved",
                "secret": f"bench-not-a-secret-{n}",
            }
            for n, loc in enumerate(summit.locations)
        ]  # fmt: skip
        for i in range(0, len(rows), 5000):
            db.execute(insert(Location), rows[i : i + 5000])
        query = select(Location.public_id, Location.id).where(Location.summit_id == made.id)
        id_of = {public_id: location_id for public_id, location_id in db.execute(query)}
        ids = [id_of[loc.location_id] for loc in summit.locations]
        summit_id = made.id
        samples = [
            {
                "summit_id": summit_id, "sampled_at": datetime.fromtimestamp(at, UTC),
                "online_total": online, "peak": online, "by_country": {},
            }
            for at, online in summit.online_timeline(60)
        ]  # fmt: skip
        db.execute(insert(PresenceSample), samples)
    buckets = per_bucket_counts(summit, ids)
    for start in sorted(buckets):
        with database.session() as db:
            for writer, (location_ids, beats) in enumerate(buckets.pop(start)):
                counts = dict(zip(location_ids, beats, strict=True))
                store_bucket_counts(db, summit_id, start, f"bench-{writer}", counts)
    with database.session() as db:
        size = db.scalar(
            select(func.sum(func.length(AttendanceCounts.location_ids) * 2)).where(
                AttendanceCounts.summit_id == summit_id
            )
        )
    database.dispose()
    return int(size or 0)


def seed_worst_case(url: str, locations: int, days: int) -> int:
    """Seed the worst case: every location present (30 heartbeats) in every bucket of `days`.

    Sessions cover whole days (one per day), so all 288 buckets a day count; presence
    samples say every location was online every minute.  Returns the bytes of counts.
    """
    database = Database(url)
    database.upgrade()
    first = datetime(2027, 7, 17, tzinfo=UTC)
    rng = random.Random(7)
    countries = ["DE", "FR", "BR", "IN", "US", "NG", "KE", "PH", "MX", "ID", "IR", "AR"]
    with database.session() as db:
        made = programme.create_summit(
            db,
            programme.SummitInput(
                slug="worst-case", title="Worst case", time_zone="UTC",
                start_date=first.date(), end_date=(first + timedelta(days=days - 1)).date(),
            ),
        )  # fmt: skip
        for day in range(days):
            programme.add_session(
                db,
                made,
                programme.SessionInput(
                    title=f"Day {day + 1}",
                    planned_start=first + timedelta(days=day),
                    planned_end=first + timedelta(days=day + 1),
                ),
            )
        rows = [
            {
                "summit_id": made.id, "public_id": f"worst-{n}", "label": f"Location {n}",
                "country": rng.choice(countries), "city": "", "kind": "other",
                "expected_audience": 10, "contact": "",
                "privacy_level": "hidden" if n % 50 == 0 else "public", "status": "approved",
                "secret": f"bench-not-a-secret-{n}",
            }
            for n in range(locations)
        ]  # fmt: skip
        for i in range(0, len(rows), 5000):
            db.execute(insert(Location), rows[i : i + 5000])
        query = select(Location.id).where(Location.summit_id == made.id).order_by(Location.id)
        ids = list(db.scalars(query))
        summit_id = made.id
        start = int(first.timestamp())
        db.execute(
            insert(PresenceSample),
            [
                {
                    "summit_id": summit_id, "sampled_at": datetime.fromtimestamp(at, UTC),
                    "online_total": locations, "peak": locations, "by_country": {},
                }
                for at in range(start, start + days * 86400, 60)
            ],
        )  # fmt: skip
    # Two writers (workers), each with half the locations: the same packed rows per bucket.
    halves = [sorted(ids[w::WRITERS]) for w in range(WRITERS)]
    packed = [
        (array("i", half).tobytes(), array("I", [30] * len(half)).tobytes()) for half in halves
    ]
    buckets = range(start, start + days * 86400, BUCKET_SECONDS)
    for at in range(0, len(buckets), 24):
        with database.session() as db:
            db.execute(
                insert(AttendanceCounts),
                [
                    {
                        "summit_id": summit_id, "bucket_start": bucket, "writer": f"bench-{w}",
                        "location_ids": packed[w][0], "heartbeats": packed[w][1],
                    }
                    for bucket in buckets[at : at + 24]
                    for w in range(WRITERS)
                ],
            )  # fmt: skip
    database.dispose()
    return len(buckets) * sum(len(a) + len(b) for a, b in packed)


def measure(url: str, publish: bool) -> None:
    """In this (fresh) process: time the reference and the report; print JSON."""
    database = Database(url)
    with database.session() as db:
        summit = db.scalar(select(Summit))
        assert summit is not None
        began = time.perf_counter()
        stored = 0
        query = select(AttendanceCounts.location_ids, AttendanceCounts.heartbeats).where(
            AttendanceCounts.summit_id == summit.id
        )
        for ids, beats in db.execute(query.execution_options(yield_per=16)):
            stored += len(ids) + len(beats)
        reference = time.perf_counter() - began
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(
                environment="test",
                secret_key="bench-secret-" + "x" * 32,
                data_dir=Path(tmp) / "data",
                database_url=url,
                auto_migrate=False,
                attendance_bucket_s=BUCKET_SECONDS,
                presence_sample_interval_s=60,
            )
            # The figures (attendance_data) timed apart from the drawing within the same
            # call, through the name build_attendance_report looks up.
            data_s = 0.0

            def timed_data(db: DbSession, summit: Summit, settings: Settings) -> AttendanceData:
                nonlocal data_s
                began = time.perf_counter()
                data = attendance_data(db, summit, settings)
                data_s = time.perf_counter() - began
                return data

            began, cpu = time.perf_counter(), time.process_time()
            with patch.object(reports, "attendance_data", timed_data):
                built = build_attendance_report(db, summit, settings, Path(tmp))
            whole, cpu = time.perf_counter() - began, time.process_time() - cpu
            assert built.files.pdf.stat().st_size > 0
            publish_s = per_bucket_s = 0.0
            if publish:
                # The publish path: counts → pseudonyms → log lines, signed heads, index.
                began = time.perf_counter()
                publication = publish_attendance(db, summit, settings)
                publish_s = time.perf_counter() - began
                per_bucket_s = publish_s / max(1, built.data.public.buckets)
                assert publication.tree_size == built.data.public.entries
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = built.data.public
    print(
        json.dumps(
            {
                "reference_s": reference, "stored_bytes": stored, "report_s": whole,
                "data_s": data_s, "report_cpu_s": cpu,
                "peak_mib": peak, "distinct": figures.distinct_locations,
                "entries": figures.entries, "peak_concurrent": figures.peak_concurrent,
                "publish_s": publish_s, "publish_per_bucket_s": per_bucket_s,
            }
        )
    )  # fmt: skip


def run_child(url: str, name: str, *, publish: bool = False) -> dict[str, float]:
    """Measure one database in a child process, so its peak RSS is the report's alone."""
    argv = [sys.executable, __file__, "--measure", url, *(["--publish"] if publish else [])]
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"{name}: reference (read {result['stored_bytes'] / 2**20:.0f} MiB of counts once) "
        f"{result['reference_s']:.2f} s; report {result['report_s']:.1f} s (target 30 s), "
        f"{result['report_s'] / result['reference_s']:.0f}x reference (figures "
        f"{result['data_s']:.1f} s, the rest drawing; report CPU "
        f"{result['report_cpu_s']:.1f} s); peak RSS "
        f"{result['peak_mib']:.0f} MiB (target 2048 MiB); {result['distinct']:.0f} locations, "
        f"{result['entries']:.0f} presences, peak {result['peak_concurrent']:.0f}"
    )
    if publish:
        print(
            f"  publish (after the report, same child): {result['publish_s']:.1f} s, "
            f"{result['publish_per_bucket_s']:.3f} s per bucket on average (target 2 s per "
            "bucket of 50,000; RSS above includes it)"
        )
    return result


def from_database(locations: int, days: int, *, worst_case: bool = False) -> None:
    """Seed SQLite and a temporary PostgreSQL database, then measure the report on each."""
    summit = None if worst_case else simulate_summit(locations, days=days)

    def seeded(url: str) -> int:
        return seed_worst_case(url, locations, days) if summit is None else seed(url, summit)

    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, {locations} locations × {days} days, from the database"
        + (", WORST CASE: every location present in every bucket" if worst_case else "")
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        began = time.perf_counter()
        stored = seeded(url)
        print(
            f"SQLite seeded in {time.perf_counter() - began:.0f} s ({stored / 2**20:.0f} MiB "
            f"of counts, file {Path(tmp, 'bench.db').stat().st_size / 2**20:.0f} MiB)"
        )
        # Publishing the worst case writes a 3.7 GB log: benchmarks/audit_log.py covers it.
        run_child(url, f"SQLite (load {os.getloadavg()[0]:.1f})", publish=not worst_case)
    name = f"summitcast_bench_{secrets.token_hex(4)}"
    admin = create_engine(make_engine(POSTGRES_ADMIN_URL).url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        began = time.perf_counter()
        seeded(url)
        print(f"PostgreSQL seeded in {time.perf_counter() - began:.0f} s")
        run_child(url, f"PostgreSQL (load {os.getloadavg()[0]:.1f})")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--locations", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--from-database", action="store_true", help="seed SQLite and PostgreSQL")
    parser.add_argument(
        "--worst-case",
        action="store_true",
        help="with --from-database: every location present in every bucket of every day",
    )
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.publish)
        return
    if args.from_database:
        from_database(args.locations, args.days, worst_case=args.worst_case)
        return
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
