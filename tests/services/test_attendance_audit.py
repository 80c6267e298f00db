"""Must show: a simulated summit through accepted heartbeats → buckets → publish → `audit verify`.

Thousands of locations join and leave three sessions; their heartbeats go through
two LiveService workers (sharing one presence back-end, as with Redis), each with its
own AttendanceRecorder, flushed while the summit runs. `summitcast audit verify` on
the published log must recompute exactly the published figures, and fail with a
clear message on a tampered copy.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from summitcast.audit.log import SignedTreeHead, figures_from_dict
from summitcast.cli.main import app as cli
from summitcast.config import Settings
from summitcast.domain.attendance import AttendanceTally, CountingRule, public_countries
from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.presence.memory import MemoryPresence, MemoryPubSub
from summitcast.reports.simulate import HEARTBEAT_SECONDS, simulate_attendance
from summitcast.services import attendance, locations, programme
from summitcast.services.attendance import AttendanceRecorder
from summitcast.services.live import LiveService
from summitcast.services.locations import LocationInput
from summitcast.storage.database import Database
from summitcast.storage.tables import Summit
from tests.conftest import TEST_LINKS, make_summit

pytestmark = pytest.mark.integration

LOCATIONS = 1500
BUCKET_S = 60  # short buckets keep the heartbeat count of the test bounded (6 per bucket)
T0 = int(datetime(2027, 7, 17, 10, 0, tzinfo=UTC).timestamp())
SESSIONS = ((0, 12 * 60), (20 * 60, 32 * 60), (40 * 60, 52 * 60))


class Clock:
    """The wall clock every worker reads; the test moves it."""

    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def audit_settings(settings: Settings) -> Settings:
    """Test settings with one-minute buckets."""
    return settings.model_copy(update={"attendance_bucket_s": BUCKET_S})


def _published_summit(
    database: Database, settings: Settings
) -> tuple[Path, dict[str, object], str]:
    """Run the simulated summit through the live path, publish; (log, expected figures, key)."""
    make_summit(database)
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        for n, (start, end) in enumerate(SESSIONS):
            programme.add_session(
                db,
                summit,
                programme.SessionInput(
                    title=f"Session {n + 1}",
                    planned_start=datetime.fromtimestamp(T0 + start, UTC),
                    planned_end=datetime.fromtimestamp(T0 + end, UTC),
                ),
            )
        windows, _ = attendance.session_windows(db, summit)
    simulated = simulate_attendance(windows, LOCATIONS, seed=7)
    registered = {}
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        for sim in simulated.locations:
            location = locations.register_location(
                db,
                summit,
                LocationInput(
                    label=sim.location_id, country=sim.country, privacy_level=sim.privacy
                ),
                at_risk=frozenset(),
                links=TEST_LINKS,
            )
            locations.approve_location(db, location)
            registered[sim.location_id] = (location.public_id, TEST_LINKS.open(location).encode())

    clock = Clock()
    presence, pubsub = MemoryPresence(35.0, clock), MemoryPubSub()
    workers = []
    for _ in range(2):
        live = LiveService(
            settings=settings, database=database, presence=presence, pubsub=pubsub, wall_clock=clock
        )
        recorder = AttendanceRecorder(BUCKET_S, clock)
        live.on_accepted = recorder.count
        workers.append((live, recorder))
    beats = sorted(
        (t, sim.location_id)
        for sim in simulated.locations
        for join, leave in sim.online
        for t in range(join, leave, HEARTBEAT_SECONDS)
    )

    async def run() -> int:
        accepted = 0
        seq: dict[str, int] = {}
        flushed_minute = T0 // BUCKET_S
        swept = T0
        for n, (moment, sim_id) in enumerate(beats):
            clock.now = float(moment)
            if moment - swept >= HEARTBEAT_SECONDS:
                swept = moment
                await workers[0][0].sweep()  # the presence task's job, every second in the app
            if moment // BUCKET_S != flushed_minute:
                flushed_minute = moment // BUCKET_S
                for _, recorder in workers:
                    await recorder.flush(database)  # closed buckets, as the background task does
            public_id, secret = registered[sim_id]
            number = seq.get(public_id, 0)
            seq[public_id] = number + 1
            token = encode_heartbeat(sign_heartbeat(secret, public_id, "epoch-one", number, moment))
            live, _ = workers[n % 2]  # heartbeats of one location land on both workers
            accepted += (await live.heartbeat(token)).ok
        for _, recorder in workers:
            await recorder.flush(database, everything=True)  # shutdown
        return accepted

    assert asyncio.run(run()) == len(beats)
    with database.session() as db:
        summit = db.get(Summit, programme.get_summit(db, "test-summit").id)
        assert summit is not None
        publication = attendance.publish_attendance(db, summit, settings)
        path = attendance.published_log_path(settings, summit, publication)
        published = publication.figures
        key = publication.public_key

    # The same figures computed straight from the simulation, without the database.
    rule = CountingRule(bucket_seconds=BUCKET_S)
    buckets = simulated.buckets(rule)
    hidden = frozenset(s.location_id for s in simulated.locations if s.privacy == "hidden")
    country = public_countries(buckets, hidden, rule.k)
    tally = AttendanceTally(windows, rule)
    for bucket in buckets:
        keys = list(bucket.present)
        tally.add_columns(bucket.start, keys, [country[k] for k in keys])
    assert figures_from_dict(published) == tally.figures()
    return path, published, key


# One simulated summit per database back-end (about 10 s each); the tampering tests
# only read its log file, which stays in the first test's tmp_path for the session.
_PUBLISHED: dict[str, tuple[Path, dict[str, object], str]] = {}


@pytest.fixture
def published(database: Database, audit_settings: Settings) -> tuple[Path, dict[str, object], str]:
    """The published log of the simulated summit."""
    backend = database.engine.dialect.name
    if backend not in _PUBLISHED:
        _PUBLISHED[backend] = _published_summit(database, audit_settings)
    return _PUBLISHED[backend]


def _verify(path: Path, key: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["audit", "verify", str(path), "--public-key", key, "--no-progress"]
    )
    return result.exit_code, result.output


def test_audit_verify_recomputes_the_published_figures(
    published: tuple[Path, dict[str, object], str],
) -> None:
    path, figures, key = published

    code, output = _verify(path, key)

    assert code == 0, output
    assert output.startswith("OK: ")
    assert "distinct locations" in output
    assert f"│ {figures['distinct_locations']}" in output
    assert figures["distinct_locations"] > LOCATIONS // 2
    assert f"{figures['peak_concurrent']} at" in output


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_tampered_log_with_a_pseudonym_removed_fails(
    published: tuple[Path, dict[str, object], str], tmp_path: Path
) -> None:
    path, _, key = published
    lines = _lines(path)
    index = next(
        i for i, line in enumerate(lines) if '"type":"bucket"' in line and '"pseudonym"' in line
    )
    record = json.loads(lines[index])
    record["entries"] = record["entries"][1:]
    lines[index] = json.dumps(record, separators=(",", ":")) + "\n"
    tampered = tmp_path / "removed.jsonl"
    tampered.write_text("".join(lines), encoding="utf-8")

    code, output = _verify(tampered, key)

    assert code == 1
    assert "FAILED" in output
    assert "entries were added or removed after signing" in output


def test_tampered_log_with_a_bucket_reordered_fails(
    published: tuple[Path, dict[str, object], str], tmp_path: Path
) -> None:
    path, _, key = published
    lines = _lines(path)
    buckets = [i for i, line in enumerate(lines) if line.startswith('{"type":"bucket"')]
    a, b = buckets[1], buckets[2]
    lines[a], lines[b] = lines[b], lines[a]
    tampered = tmp_path / "reordered.jsonl"
    tampered.write_text("".join(lines), encoding="utf-8")

    code, output = _verify(tampered, key)

    assert code == 1
    assert f"line {b + 1}: bucket" in output
    assert "is out of order" in output


def test_tampered_log_with_a_head_resigned_by_another_key_fails(
    published: tuple[Path, dict[str, object], str], tmp_path: Path
) -> None:
    path, _, key = published
    lines = _lines(path)
    header = json.loads(lines[0])
    index = next(i for i, line in enumerate(lines) if line.startswith('{"type":"head"'))
    record = json.loads(lines[index])
    from summitcast.audit.log import LogHeader

    digest = LogHeader.from_record(header).digest()
    head = SignedTreeHead.from_record(record, summit=header["summit"], header_sha256=digest)
    record["signature"] = base64.b64encode(
        Ed25519PrivateKey.generate().sign(head.message())
    ).decode()
    lines[index] = json.dumps(record, separators=(",", ":")) + "\n"
    tampered = tmp_path / "resigned.jsonl"
    tampered.write_text("".join(lines), encoding="utf-8")

    code, output = _verify(tampered, key)

    assert code == 1
    assert (
        f"line {index + 1}: tree head (size {head.tree_size}) has a signature that does not verify"
        in output
    )
