"""200 speakers create an upload and send its first chunk at once, 10 rounds: no 404 (issue 13).

A 201 for a new upload must mean it is committed: the first chunk, sent right after it
over another connection, must never be answered 404 "No such upload.". Runs the real
`summitcast serve` (2 workers by default) on SQLite and on PostgreSQL (a scratch database
on 127.0.0.1:5432, skipped if none), seeds one speaker and link per client (four
co-speakers per item), and races every client each round with httpx.AsyncClient. Every
created upload is then read back through its owner's link.

Figures: the 404s (target 0) and the answers that were not 201/204, and as the ratio
against a reference measured in the same run, the race's wall time over the time the
same requests take one client after another (the serial reference, one round).

    .venv/bin/python benchmarks/upload_commit_race.py [--clients 200] [--rounds 10] [--workers 2]
        [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the race itself is shared with tests/e2e

from tests.e2e.upload_race import Round, race_round, seed_speakers  # noqa: E402

CHUNK = 64 * 1024
POSTGRES_ADMIN = os.environ.get(
    "SUMMITCAST_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(
    data: Path, database_url: str, secret: str, workers: int
) -> tuple[subprocess.Popen[bytes], str]:
    """`summitcast serve` on a free port; the process and its address, once it answers."""
    port = _port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SUMMITCAST_")},
        "SUMMITCAST_ENVIRONMENT": "test",
        "SUMMITCAST_SECRET_KEY": secret,
        "SUMMITCAST_DATA_DIR": str(data),
        "SUMMITCAST_DATABASE_URL": database_url,
        "SUMMITCAST_UPLOAD_CHUNK_BYTES": str(CHUNK),
        "SUMMITCAST_JOB_WORKERS": "false",
    }
    argv = [sys.executable, "-m", "summitcast.cli", "serve", "--port", str(port)]
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen([*argv, "--workers", str(workers)], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit((data / "server.log").read_text())
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("server did not start")


async def _serial(base: str, tokens: list[str]) -> float:
    """The reference: the same create + first chunk, one client after another."""
    began = time.perf_counter()
    for token in tokens:
        await race_round(base, [token], CHUNK)
    return time.perf_counter() - began


def _one_database(name: str, url: str, args: argparse.Namespace) -> tuple[list[Round], float]:
    data = Path(tempfile.mkdtemp(prefix=f"race-{name}-"))
    secret = secrets.token_urlsafe(48)
    proc, base = _serve(data, url, secret, args.workers)
    try:
        tokens = seed_speakers(url, secret.encode(), args.clients)
        serial = asyncio.run(_serial(base, tokens))
        rounds = []
        for number in range(args.rounds):
            found = asyncio.run(race_round(base, tokens, CHUNK))
            rounds.append(found)
            print(
                f"  {name} round {number + 1}: {found.seconds:.2f} s, creates "
                f"{dict(found.create_statuses)}, first chunks {dict(found.chunk_statuses)}, "
                f"visible {found.visible}/{found.created}",
                flush=True,
            )
        tracebacks = (data / "server.log").read_text().count("Traceback")
        print(f"  {name}: tracebacks in the server log: {tracebacks}")
        return rounds, serial
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _postgres() -> str | None:
    """A scratch PostgreSQL database's URL, or None when no server answers."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # no PostgreSQL here
        print(f"PostgreSQL skipped: {exc}")
        return None
    name = f"summitcast_race_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def _drop(url: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def main() -> None:
    """Race on each database and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    wanted = args.databases.split(",")
    targets = []
    if "sqlite" in wanted:
        targets.append(("sqlite", f"sqlite:///{Path(tempfile.mkdtemp()) / 'race.db'}"))
    pg = _postgres() if "postgresql" in wanted else None
    if pg is not None:
        targets.append(("postgresql", pg))
    try:
        for name, url in targets:
            rounds, serial = _one_database(name, url, args)
            creates: Counter[int] = sum((r.create_statuses for r in rounds), Counter())
            chunks: Counter[int] = sum((r.chunk_statuses for r in rounds), Counter())
            race_s = sorted(r.seconds for r in rounds)[len(rounds) // 2]
            print(
                f"{name}: {args.clients} clients x {args.rounds} rounds, {args.workers} workers: "
                f"404 answers {chunks[404]} of {sum(chunks.values())} first chunks; creates "
                f"{dict(creates)}; chunks {dict(chunks)}; visible "
                f"{sum(r.visible for r in rounds)}/{sum(r.created for r in rounds)}; median "
                f"round {race_s:.2f} s vs {serial:.2f} s one after another "
                f"(ratio {race_s / serial:.2f})"
            )
    finally:
        if pg is not None:
            _drop(pg)


if __name__ == "__main__":
    main()
