"""Benchmark the attendance log: append+sign one 5-minute bucket, and verify a whole log.

Targets: append a bucket of 50,000 present locations and sign the head in ≤ 2 s;
verify a 4-day log (1,152 buckets of 50,000 present, ~57.6 M entries, ~3.7 GB) in
≤ 60 s on 2 cores.  Each time is printed with its ratio to plain hashlib SHA-256
over 50,000 leaves, measured in the same run.

The big log is written by this script, not by `AttendanceLogWriter` (which takes
minutes for 57 M entries): bucket lines are laid out by numpy from a pool of
`--pool` locations (each bucket holds a random `--locations` of them), and two
processes hash them into the Merkle tree.  Heads, the figures and the final head
are computed and signed exactly as the writer does; `audit verify` then has to
agree with them.  `--buckets` smaller than 1,152 verifies a shorter log and
extrapolates linearly.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import multiprocessing
import os
import resource
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from summitcast.audit.log import (
    AttendanceLogWriter,
    LogEntry,
    LogHeader,
    SignedTreeHead,
    canonical_json,
    figures_to_dict,
    head_message,
    leaf_hashes,
)
from summitcast.audit.merkle import CompactTree, compact_range
from summitcast.audit.verify import verify_log
from summitcast.domain.attendance import AttendanceTally, CountingRule, SessionWindow

START = datetime(2024, 7, 17, tzinfo=UTC)
FULL_BUCKETS = 1152  # 4 days of 5-minute buckets
HEAD_EVERY = 12  # hourly heads, as `publish_attendance` writes them
COUNTRIES = ["DE", "FR", "BR", "IN", "US", "NG", "KE", "PH", "MX", "ID", "ZZ"]
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)

# The pool of entry rows, built once per process by `_init_pool`.
_POOL: dict[str, Any] = {}


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


def _init_pool(pool: int, locations: int, seed: int) -> None:
    """Build the sorted pool of pseudonyms and countries as 64-byte log entries."""
    rng = np.random.default_rng(seed)
    raw = np.frombuffer(rng.bytes(16 * pool), np.uint8).reshape(pool, 16)
    digits = np.empty((pool, 32), np.uint8)
    digits[:, 0::2] = HEX[raw >> 4]
    digits[:, 1::2] = HEX[raw & 15]
    digits = np.unique(digits.view("S32").ravel()).view(np.uint8).reshape(-1, 32)
    codes = np.array([c.encode() for c in COUNTRIES], "S2")[rng.integers(0, len(COUNTRIES), pool)]
    template = b'{"pseudonym":"' + b"p" * 32 + b'","country":"CC"},'
    rows = np.tile(np.frombuffer(template, np.uint8), (len(digits), 1))
    rows[:, 14:46] = digits
    rows[:, 59:61] = codes.view(np.uint8).reshape(-1, 2)[: len(digits)]
    _POOL.update(
        rows=rows,
        pseudonyms=[bytes(r).decode() for r in digits],
        countries=[bytes(r).decode() for r in codes.view(np.uint8).reshape(-1, 2)[: len(digits)]],
        locations=locations,
        seed=seed,
    )


def _chosen(index: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Return the sorted pool rows present in bucket `index` (the same in every process)."""
    rng = np.random.default_rng((_POOL["seed"], index))
    return np.sort(rng.choice(len(_POOL["rows"]), _POOL["locations"], replace=False))


def _bucket(task: tuple[int, int, int]) -> tuple[bytes, list[tuple[int, bytes]]]:
    """Return one bucket line spelt as the writer spells it, and its subtrees at `position`."""
    index, start, position = task
    chosen = _chosen(index)
    body = _POOL["rows"][chosen].tobytes()[:-1]  # the last entry has no comma
    line = f'{{"type":"bucket","bucket_start":{start},"entries":['.encode() + body + b"]}\n"
    names, codes = _POOL["pseudonyms"], _POOL["countries"]
    picked = chosen.tolist()
    hashes = leaf_hashes(start, [names[i] for i in picked], [codes[i] for i in picked])
    return line, compact_range(hashes, position)


def _in_order(
    workers: Any, base: int, buckets: int, locations: int
) -> Iterator[tuple[bytes, list[tuple[int, bytes]]]]:
    """Yield the buckets made by the pool in order, at most 8 ahead (3 MB lines pile up)."""
    ahead: collections.deque[Any] = collections.deque()
    for i in range(buckets):
        ahead.append(workers.apply_async(_bucket, ((i, base + 300 * i, i * locations),)))
        if len(ahead) >= 8:
            yield ahead.popleft().get()
    while ahead:
        yield ahead.popleft().get()


def _json_line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def write_big_log(
    path: Path, *, buckets: int, locations: int, pool: int, key: Ed25519PrivateKey, seed: int
) -> None:
    """Write a valid log of `buckets` × `locations` entries, heads hourly, figures signed."""
    rule = CountingRule()
    base = int(START.timestamp())
    days = -(-buckets * 300 // 86400)
    sessions = [
        SessionWindow(f"day-{d + 1}", START + timedelta(days=d), START + timedelta(days=d + 1))
        for d in range(days)
    ]
    public_key = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    header = LogHeader("bench", datetime.now(UTC), rule, tuple(sessions), public_key)
    header_sha256 = header.digest()
    tree = CompactTree()
    tally = AttendanceTally(sessions, rule)
    _init_pool(pool, locations, seed)
    names, codes = _POOL["pseudonyms"], _POOL["countries"]

    def signed(figures_sha256: str | None) -> SignedTreeHead:
        moment = datetime.now(UTC).replace(microsecond=0)
        message = head_message(
            "bench", header_sha256, tree.size, tree.root(), moment, figures_sha256
        )
        return SignedTreeHead(
            "bench",
            header_sha256,
            tree.size,
            tree.root(),
            moment,
            key.sign(message),
            figures_sha256,
        )

    context = multiprocessing.get_context("fork")  # workers inherit nothing but the pool rows
    with path.open("wb") as out, context.Pool(2, _init_pool, (pool, locations, seed)) as workers:
        out.write(_json_line(header.to_record()))
        for index, (line, subtrees) in enumerate(_in_order(workers, base, buckets, locations), 1):
            out.write(line)
            for level, node in subtrees:
                tree.append_subtree(level, node)
            picked = _chosen(index - 1).tolist()
            tally.add_columns(
                base + 300 * (index - 1), [names[i] for i in picked], [codes[i] for i in picked]
            )
            if index % HEAD_EVERY == 0:
                out.write(_json_line({"type": "head", **signed(None).to_record()}))
        figures = figures_to_dict(tally.figures())
        head = signed(hashlib.sha256(canonical_json(figures)).hexdigest())
        out.write(_json_line({"type": "figures", "figures": figures, "head": head.to_record()}))


def _cpu() -> float:
    """Return CPU seconds of this process and its finished children so far."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _append_and_sign(locations: int, rounds: int, key: Ed25519PrivateKey) -> float:
    """Return the median time of `AttendanceLogWriter` appending one bucket and signing."""
    _init_pool(locations, locations, 7)
    entries = [LogEntry(p, c) for p, c in zip(_POOL["pseudonyms"], _POOL["countries"], strict=True)]
    session = SessionWindow("all", START, START + timedelta(seconds=300 * rounds))
    writer = AttendanceLogWriter(
        io.StringIO(), summit="bench", rule=CountingRule(), sessions=[session], signing_key=key
    )
    times = []
    for b in range(rounds):
        began = time.perf_counter()
        writer.append_bucket(int(START.timestamp()) + 300 * b, entries)
        writer.sign_head()
        times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--locations", type=int, default=50_000, help="present in each bucket")
    parser.add_argument("--pool", type=int, default=60_000, help="locations to draw them from")
    parser.add_argument("--buckets", type=int, default=FULL_BUCKETS)
    parser.add_argument("--append-rounds", type=int, default=5)
    parser.add_argument(
        "--workers", type=int, default=None, help="verify_log workers (default: its own choice)"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where to write the log")
    args = parser.parse_args()

    key = Ed25519PrivateKey.generate()
    ref = _reference(args.locations)
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, "
        f"{args.locations} present (of {args.pool}) × {args.buckets} buckets"
    )
    print(f"reference: SHA-256 over {args.locations} leaves: {ref:.3f} s")
    append = _append_and_sign(args.locations, args.append_rounds, key)
    print(
        f"append+sign one bucket: {append:.3f} s (median of {args.append_rounds}), "
        f"target 2 s, {append / ref:.1f}x reference"
    )

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "attendance.jsonl"
        began = time.perf_counter()
        write_big_log(
            path,
            buckets=args.buckets,
            locations=args.locations,
            pool=args.pool,
            key=key,
            seed=1,
        )
        size = path.stat().st_size
        print(f"log written in {time.perf_counter() - began:.1f} s ({size / 1e9:.2f} GB)")
        cpu = _cpu()
        began = time.perf_counter()
        report = verify_log(path, None, workers=args.workers)
        verify = time.perf_counter() - began
        cpu = _cpu() - cpu
        assert report.ok, report.problems[:3]
        entries = args.locations * args.buckets
        per_leaf = ref / args.locations
        print(
            f"verify {args.buckets} buckets ({entries} entries, {size / 1e6:.0f} MB): "
            f"{verify:.1f} s wall, {cpu:.1f} s CPU ({1e6 * cpu / entries:.2f} µs per entry), "
            f"{verify / (ref * args.buckets):.1f}x reference (wall), "
            f"{cpu / entries / per_leaf:.1f}x reference (CPU per entry / SHA-256 per leaf), "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        if args.buckets == FULL_BUCKETS:
            print(f"full log: {verify:.0f} s (target 60 s)")
        else:
            full = verify * FULL_BUCKETS / args.buckets
            print(
                f"EXTRAPOLATED (linear) to {FULL_BUCKETS} buckets: {full:.0f} s wall, "
                f"{cpu * FULL_BUCKETS / args.buckets / 2:.0f} s on 2 idle cores (target 60 s)"
            )


if __name__ == "__main__":
    main()
