"""Upload throughput through summitcast's chunk protocol vs a plain file copy of the same bytes.

Runs the real app under uvicorn on loopback, creates an upload and PATCHes 8 MiB chunks
with per-chunk SHA-256 headers and checks the file checksum at the end (as upload.js
does; the client's hashing runs on the same two cores), then copies the same bytes with
shutil.copyfile + fsync (a finished upload is fsynced too). Prints both rates and their
ratio (target ≥ 0.70). The server runs in its own process. On a shared machine the
two are measured in alternating rounds and each figure is the median of its rounds.

    .venv/bin/python benchmarks/upload_throughput.py [--mib 1024] [--chunk-mib 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import httpx

from summitcast.config import Settings
from summitcast.services import programme, speakers
from summitcast.storage.database import Database


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _token(database: Database, settings: Settings) -> str:
    with database.session() as db:
        summit = programme.create_summit(
            db,
            programme.SummitInput(
                slug="bench",
                title="Bench",
                time_zone="UTC",
                start_date=datetime(2027, 7, 17).date(),
                end_date=datetime(2027, 7, 18).date(),
            ),
        )
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="S",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 11, tzinfo=UTC),
            ),
        )
        item = programme.add_item(db, session, programme.ItemInput(title="T"))
        speaker = programme.add_speaker(db, summit, programme.SpeakerInput(name="S"))
        invitation = speakers.invite_speaker(db, summit, item, speaker.id, valid_days=1)
        return speakers.invitation_token(
            invitation, settings.secret_key.get_secret_value().encode()
        )


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size, chunk = args.mib * 1024 * 1024, args.chunk_mib * 1024 * 1024
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        folder = Path(tmp)
        source = folder / "source.mp4"
        with source.open("wb") as handle:
            handle.write(b"\x00\x00\x00\x18ftypmp42")  # sniffed as MP4; the rest is random
            block = os.urandom(chunk)
            while handle.tell() < size:
                handle.write(block[: size - handle.tell()])
        port = _port()
        settings = Settings(
            environment="test",
            secret_key="bench-secret-" + "x" * 32,
            data_dir=folder / "data",
            upload_chunk_bytes=chunk,
            job_workers=False,  # measure the upload path, not the probe that follows
            broadcast_workers=False,
        )
        database = Database(settings.effective_database_url)
        database.upgrade()
        token = _token(database, settings)
        database.dispose()
        # The server runs in its own process, as in production: the client's own hashing
        # and sending must not share the server's interpreter (and its GIL).
        env = {
            **os.environ,
            "SUMMITCAST_ENVIRONMENT": "test",
            "SUMMITCAST_SECRET_KEY": settings.secret_key.get_secret_value(),
            "SUMMITCAST_DATA_DIR": str(settings.data_dir),
            "SUMMITCAST_UPLOAD_CHUNK_BYTES": str(chunk),
            "SUMMITCAST_JOB_WORKERS": "false",
            "SUMMITCAST_BROADCAST_WORKERS": "false",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "summitcast.app:app_from_environment",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        _wait_for(port)
        base = f"http://127.0.0.1:{port}"
        uploads: list[float] = []
        copies: list[float] = []
        load_before = os.getloadavg()
        try:
            with httpx.Client(base_url=base, timeout=120) as client:
                for round_ in range(args.rounds):
                    upload_s, state = _upload(client, token, source, size, chunk)
                    uploads.append(upload_s)
                    copies.append(_copy(source, folder / f"copy{round_}.mp4"))
                    print(
                        f"round {round_ + 1}: upload {upload_s:.2f} s ({state}), "
                        f"copy {copies[-1]:.2f} s"
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)
    upload_s, copy_s = statistics.median(uploads), statistics.median(copies)
    mib = size / 1024 / 1024
    print(f"size {mib:.0f} MiB in {chunk // 1024 // 1024} MiB chunks, median of {args.rounds}")
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    print(f"summitcast upload: {mib / upload_s:7.1f} MiB/s ({upload_s:.2f} s)")
    print(f"plain file copy:   {mib / copy_s:7.1f} MiB/s ({copy_s:.2f} s)")
    print(f"ratio: {copy_s / upload_s:.2f} (target >= 0.70)")


def _prepare(handle: BinaryIO, chunk: int) -> tuple[bytes, bytes]:
    """Read the next chunk and its SHA-256, as upload.js does before sending it."""
    data = handle.read(chunk)
    return data, hashlib.sha256(data).digest()


def _upload(
    client: httpx.Client, token: str, source: Path, size: int, chunk: int
) -> tuple[float, str]:
    """Send the file as upload.js does: chunk by chunk, each with its SHA-256; (seconds, state)."""
    with source.open("rb") as handle, ThreadPoolExecutor(max_workers=1) as reader:
        began = time.perf_counter()
        created = client.post(
            f"/speak/{token}/uploads", json={"size": size, "kind": "programme"}
        ).json()
        offset = 0
        digests: list[bytes] = []
        ahead = reader.submit(_prepare, handle, chunk)
        while offset < size:
            data, digest = ahead.result()
            # Like upload.js: the next chunk is read and hashed while this one travels.
            ahead = reader.submit(_prepare, handle, chunk)
            checksum = base64.b64encode(digest).decode()
            response = client.patch(
                created["url"],
                content=data,
                headers={"Upload-Offset": str(offset), "Upload-Checksum": f"sha256 {checksum}"},
            )
            response.raise_for_status()
            digests.append(digest)
            offset = int(response.headers["upload-offset"])
        status = client.get(created["url"]).json()
        upload_s = time.perf_counter() - began
    # Like upload.js: the file checksum from the chunk digests must equal the server's.
    if status["checksum"] != hashlib.sha256(b"".join(digests)).hexdigest():
        raise SystemExit("the server's checksum differs from the client's")
    return upload_s, str(status["state"])


def _copy(source: Path, target: Path) -> float:
    """Seconds to copy source to target and make it durable, as a finished upload is."""
    # A copy that stays in the page cache is not "on disk": fsync, as the server does.
    began = time.perf_counter()
    shutil.copyfile(source, target)
    with target.open("rb") as copied:
        os.fsync(copied.fileno())
    elapsed = time.perf_counter() - began
    target.unlink()
    return elapsed


if __name__ == "__main__":
    main()
