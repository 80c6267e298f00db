"""A fictional demo summit: three sessions over four days, speakers from many countries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.domain.broadcast import BroadcastStatus
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.services import accounts, programme
from summitcast.services.attendance import store_bucket_counts
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.tables import Location, PresenceSample, Summit, User

if TYPE_CHECKING:
    from summitcast.reports.simulate import SimulatedSummit

# (path, burnt-in text or None, tone Hz or None for the floor) -> the clip, made if missing.
ClipMaker = Callable[[Path, str | None, int | None], Path]

DEMO_SLUG = "demo-summit"
DEMO_ORGANISER = "organiser@demo.summitcast.invalid"
DEMO_PRODUCER = "producer@demo.summitcast.invalid"
DEMO_PASSWORD = "demo-password-not-secret"  # noqa: S105 - printed on purpose by `summitcast demo`

# Fictional people; names in their own scripts on purpose.
SPEAKERS = [
    ("Amara Okonkwo-Bell", "Chair of the Assembly", "NG", "en"),
    ("Lucía Ferreyra", "Youth delegate", "AR", "es"),
    ("Оксана Величко", "Regional coordinator", "UA", "uk"),
    ("陈晓岚", "Volunteer network lead", "TW", "zh"),
    ("ليلى الحسيني", "Community organiser", "JO", "ar"),
    ("अनन्या राव", "Educator", "IN", "hi"),
    ("Tadesse Bekele · ታደሰ በቀለ", "Farmer and storyteller", "ET", "am"),
    ("Jean-Baptiste Moreau", "Host of the evening", "FR", "fr"),
    ("Kaito Mori · 森海斗", "Musician", "JP", "ja"),
    ("Sipho Ndlovu", "Treasurer", "ZA", "en"),
    ("Mariana Duarte", "Doctor", "BR", "pt"),
    ("Ngozi Eze", "Poet", "GH", "en"),
]

# (day offset, local start, local end, title, [(title, kind, minutes, speaker indexes)])
SESSIONS = [
    (
        0,
        time(18, 0),
        time(19, 30),
        "Opening evening",
        [
            ("Countdown and welcome", ItemKind.SLATE, 5, []),
            ("Welcome to the summit", ItemKind.SPEECH, 10, [0]),
            ("A year of gatherings in small rooms", ItemKind.SPEECH, 8, [1]),
            ("Letters from the east", ItemKind.SPEECH, 9, [2]),
            ("Song from the harbour", ItemKind.VIDEO, 6, [8]),
            ("Building the network, one town at a time", ItemKind.SPEECH, 8, [3]),
            ("Closing words of the evening", ItemKind.SPEECH, 7, [7]),
        ],
    ),
    (
        1,
        time(14, 0),
        time(15, 30),
        "Voices of the regions",
        [
            ("Opening of the day", ItemKind.SLATE, 3, []),
            ("Teaching under pressure", ItemKind.SPEECH, 10, [5]),
            ("Water, land and patience", ItemKind.SPEECH, 9, [6]),
            ("Live from the studio: round table", ItemKind.LIVE, 20, [0, 4, 9]),
            ("Break", ItemKind.BREAK, 10, []),
            ("Care without borders", ItemKind.SPEECH, 8, [10]),
        ],
    ),
    (
        3,
        time(17, 0),
        time(18, 30),
        "Closing session",
        [
            ("Poems for the road", ItemKind.SPEECH, 7, [11]),
            ("What the numbers say", ItemKind.SPEECH, 8, [9]),
            ("Messages from the locations", ItemKind.VIDEO, 10, []),
            ("Thanks and farewell", ItemKind.SPEECH, 10, [0, 7]),
        ],
    ),
]


@dataclass(frozen=True, slots=True)
class DemoSummit:
    """What the demo created: the summit and how to log in."""

    summit: Summit
    organiser_email: str
    producer_email: str
    password: str


def _user(db: DbSession, email: str, name: str) -> User:
    found = db.scalar(select(User).where(User.email == email))
    return found or accounts.create_user(db, email=email, password=DEMO_PASSWORD, display_name=name)


def seed_demo(db: DbSession, *, start: date) -> DemoSummit:
    """Create the demo summit and its accounts, or return them if they exist."""
    organiser = _user(db, DEMO_ORGANISER, "Demo organiser")
    producer = _user(db, DEMO_PRODUCER, "Demo producer")
    summit = db.scalar(select(Summit).where(Summit.slug == DEMO_SLUG))
    if summit is None:
        summit = _create_demo_programme(db, organiser, start)
    # Marked on every run (also a data folder made before the flag existed): only a demo
    # summit counts simulated locations and gets the simulated audience.
    summit.is_demo = True
    accounts.grant_role(db, user=producer, summit=summit, role=Role.PRODUCER)
    return DemoSummit(
        summit=summit,
        organiser_email=DEMO_ORGANISER,
        producer_email=DEMO_PRODUCER,
        password=DEMO_PASSWORD,
    )


def _create_demo_programme(db: DbSession, organiser: User, start: date) -> Summit:
    """The demo summit with its speakers, sessions and items, starting on start."""
    zone_name = "Europe/Berlin"
    zone = ZoneInfo(zone_name)
    summit = programme.create_summit(
        db,
        programme.SummitInput(
            slug=DEMO_SLUG,
            title="Summit of Many Rooms (demo)",
            time_zone=zone_name,
            start_date=start,
            end_date=date.fromordinal(start.toordinal() + 3),
            languages=("en", "fr", "es"),
            description="A fictional summit watched from homes, halls and squares.",
        ),
        creator=organiser,
    )
    people = [
        programme.add_speaker(
            db,
            summit,
            programme.SpeakerInput(name=name, role_line=role, country=country, language=lang),
        )
        for name, role, country, lang in SPEAKERS
    ]
    for offset, begin, end, title, items in SESSIONS:
        day = date.fromordinal(start.toordinal() + offset)
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title=title,
                planned_start=datetime.combine(day, begin, zone),
                planned_end=datetime.combine(day, end, zone),
            ),
        )
        for item_title, kind, minutes, speaker_ids in items:
            item = programme.add_item(
                db,
                session,
                programme.ItemInput(
                    title=item_title,
                    kind=kind,
                    planned_duration_s=minutes * 60,
                    status=ItemStatus.PLANNED,
                ),
            )
            programme.set_item_speakers(db, item, [people[i].id for i in speaker_ids])
    return summit


DEMO_CLIP_S = 20  # short enough to generate in seconds on 2 cores, long enough to watch


def prepare_demo_broadcast(
    db: DbSession, made: DemoSummit, media_dir: Path, make_clip: ClipMaker
) -> int:
    """Give the first session's items generated clips and put it on air, looping; returns its id.

    Clips are cached in media_dir, so a second run is instant. The first session's
    speeches are shortened to the clips' length, so the demo shows item changes
    within a minute instead of ten. The session loops (its first item follows its
    last), and a run over a data folder whose session ended, holds, is live or stands
    on the closing slate starts it again, so the demo always opens on programme.
    """
    from summitcast.services import broadcast

    summit = made.summit
    session = programme.programme_of(db, summit)[0]
    media_dir.mkdir(parents=True, exist_ok=True)
    for number, item in enumerate(session.items):
        if item.kind not in (ItemKind.SPEECH, ItemKind.VIDEO):
            item.planned_duration_s = 6
            continue
        clip = make_clip(media_dir / f"item{number}.mp4", f"{item.title}", None)
        broadcast.attach_media(db, item, broadcast.MediaKind.PROGRAMME, str(clip))
        if number == 1:
            # The welcome speech carries interpretation and English captions.
            for language, hz in (("fr", 660), ("es", 880)):
                audio = make_clip(media_dir / f"item{number}.{language}.mp4", None, hz)
                broadcast.attach_media(
                    db, item, broadcast.MediaKind.AUDIO, str(audio), language=language
                )
            vtt = media_dir / f"item{number}.en.vtt"
            if not vtt.exists():
                cues = [
                    f"{_vtt(t)} --> {_vtt(t + 3)}\nWelcome to the summit ({t // 4 + 1})\n"
                    for t in range(0, DEMO_CLIP_S, 4)
                ]
                vtt.write_text("WEBVTT\n\n" + "\n".join(cues), encoding="utf-8")
            broadcast.attach_media(db, item, broadcast.MediaKind.SUBTITLES, str(vtt), language="en")
        item.planned_duration_s = DEMO_CLIP_S
        item.status = ItemStatus.READY.value
    db.flush()
    organiser = db.scalar(select(User).where(User.email == DEMO_ORGANISER))
    assert organiser is not None
    actor = accounts.Actor(user_id=organiser.id, is_admin=organiser.is_admin)
    broadcast.set_loop(db, actor, summit, session.id, loop=True)
    state = broadcast.plan_of(db, summit, session.id).state
    run = len(broadcast.run_of_show(db, session))
    on_programme = (
        state.status is BroadcastStatus.ON_AIR and not state.live and state.position < run
    )
    if state.active and not on_programme:
        broadcast.end_session(db, actor, summit, session.id)
    if not on_programme:
        broadcast.start_session(db, actor, summit, session.id, countdown=False)
    return session.id


def _vtt(seconds: int) -> str:
    return f"00:{seconds // 60:02d}:{seconds % 60:02d}.000"


DEMO_LOCATIONS = 3000
DEMO_ATTENDANCE_SEED = 20240717
_DEMO_PREFIX = "demo-loc-"


def seed_demo_attendance(
    db: DbSession, made: DemoSummit, settings: Settings, *, locations: int = DEMO_LOCATIONS
) -> bool:
    """Give the demo summit simulated locations, counts and samples, then publish; once only.

    Deterministic (fixed seed): the same programme gives the same figures. Returns
    False when the demo already has its attendance.
    """
    from sqlalchemy import func, insert, update

    from summitcast.reports.simulate import simulate_attendance
    from summitcast.services.attendance import (
        latest_publication,
        publish_attendance,
        session_windows,
    )

    summit = made.summit
    # Rows of a data folder made before the flag existed are simulated all the same.
    db.execute(
        update(Location)
        .where(Location.summit_id == summit.id, Location.public_id.like(f"{_DEMO_PREFIX}%"))
        .values(simulated=True)
    )
    exists = db.scalar(
        select(func.count())
        .select_from(Location)
        .where(Location.summit_id == summit.id, Location.public_id.like(f"{_DEMO_PREFIX}%"))
    )
    if exists:
        return False
    # The planned windows: the first session may be on air already (started now).
    windows, titles = session_windows(db, summit, planned_only=True)
    simulated = simulate_attendance(
        windows, locations, seed=DEMO_ATTENDANCE_SEED, session_titles=titles, id_prefix=_DEMO_PREFIX
    )
    db.execute(insert(Location), _demo_location_rows(summit.id, simulated))
    _store_demo_counts(db, summit, simulated, settings)
    db.flush()
    if latest_publication(db, summit) is None:
        publish_attendance(db, summit, settings)
    return True


def _demo_location_rows(summit_id: int, simulated: SimulatedSummit) -> list[dict[str, object]]:
    """Rows of the simulated locations: approved, flagged simulated, without a secret."""
    return [
        {
            "summit_id": summit_id,
            "public_id": loc.location_id,
            "label": f"Demo location {n + 1}",
            "country": loc.country,
            "city": "",
            "kind": "other",
            "expected_audience": 10,
            "contact": "",
            "privacy_level": loc.privacy,
            "status": "approved",
            # Fictional locations that never send heartbeats: no secret at all.
            "simulated": True,
        }
        for n, loc in enumerate(simulated.locations)
    ]


def _store_demo_counts(
    db: DbSession, summit: Summit, simulated: SimulatedSummit, settings: Settings
) -> None:
    """Store the simulated heartbeat counts per bucket and the presence samples."""
    from sqlalchemy import insert

    ids: dict[str, int] = {
        public_id: location_id
        for public_id, location_id in db.execute(
            select(Location.public_id, Location.id).where(
                Location.summit_id == summit.id, Location.public_id.like(f"{_DEMO_PREFIX}%")
            )
        )
    }
    counts = simulated.heartbeat_counts(settings.attendance_bucket_s)
    per_bucket: dict[int, dict[int, int]] = {}
    for (public_id, start), n in counts.items():
        per_bucket.setdefault(start, {})[ids[public_id]] = n
    for start, bucket in sorted(per_bucket.items()):
        store_bucket_counts(db, summit.id, start, "demo", bucket)
    sample_s = int(settings.presence_sample_interval_s)
    db.execute(
        insert(PresenceSample),
        [
            {
                "summit_id": summit.id,
                "sampled_at": datetime.fromtimestamp(at, UTC),
                "online_total": online,
                "peak": online,
                "by_country": {},
            }
            for at, online in simulated.online_timeline(sample_s)
        ],
    )


def seed_demo_audience(db: DbSession, made: DemoSummit, links: LinkSecrets) -> int:
    """Give the demo its simulated live audience (flagged rows, once); returns its size."""
    from summitcast.services.demo_presence import ensure_audience

    return ensure_audience(db, made.summit, links)
