"""SQLAlchemy tables; the schema itself changes only through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Names for constraints so that Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, time-zone aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC; SQLite forgets the zone, so it is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the shared naming convention."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), date: Date()}


class User(Base):
    """A person who logs in: organiser, producer, speaker or location host."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )


class WebAuthnCredential(Base):
    """A user's passkey: its public key and signature counter (nothing secret)."""

    __tablename__ = "webauthn_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # base64url
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class TotpSecret(Base):
    """A user's authenticator-app secret, sealed with a key derived from the server's secret."""

    __tablename__ = "totp_secrets"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary)  # nonce + AES-GCM ciphertext
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)  # None: being set up
    # The 30-second step of the last code accepted: that code and older ones are refused.
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecoveryCode(Base):
    """A one-time recovery code, kept as a salted hash."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(100))  # "<salt hex>$<sha256 hex>"
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Membership(Base):
    """A role a user holds in one summit."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "summit_id", "role", name="uq_membership"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    summit_id: Mapped[int] = mapped_column(ForeignKey("summits.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))

    user: Mapped[User] = relationship(back_populates="memberships")
    summit: Mapped[Summit] = relationship()


class Summit(Base):
    """One yearly summit: several days, a few sessions, one broadcast."""

    __tablename__ = "summits"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    time_zone: Mapped[str] = mapped_column(String(64))
    start_date: Mapped[date]
    end_date: Mapped[date]
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The fictional summit of `summitcast demo`: only a demo counts simulated locations.
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    days: Mapped[list[Day]] = relationship(
        back_populates="summit", cascade="all, delete-orphan", order_by="Day.date"
    )
    sessions: Mapped[list[Session]] = relationship(
        back_populates="summit", cascade="all, delete-orphan", order_by="Session.planned_start"
    )
    speakers: Mapped[list[Speaker]] = relationship(
        back_populates="summit", cascade="all, delete-orphan", order_by="Speaker.name"
    )


class Day(Base):
    """A calendar day of the summit, in the summit's time zone."""

    __tablename__ = "days"
    __table_args__ = (UniqueConstraint("summit_id", "date", name="uq_day_summit_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    summit_id: Mapped[int] = mapped_column(ForeignKey("summits.id", ondelete="CASCADE"))
    date: Mapped[date]
    label: Mapped[str] = mapped_column(String(200), default="")

    summit: Mapped[Summit] = relationship(back_populates="days")
    sessions: Mapped[list[Session]] = relationship(
        back_populates="day", order_by="Session.planned_start"
    )


class Session(Base):
    """A broadcast block with a planned window and a run of show."""

    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("summit_id", "key", name="uq_session_summit_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    summit_id: Mapped[int] = mapped_column(ForeignKey("summits.id", ondelete="CASCADE"), index=True)
    day_id: Mapped[int] = mapped_column(ForeignKey("days.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))  # stable identity for imports
    title: Mapped[str] = mapped_column(String(300))
    room: Mapped[str] = mapped_column(String(200), default="")
    planned_start: Mapped[datetime]
    planned_end: Mapped[datetime]

    summit: Mapped[Summit] = relationship(back_populates="sessions")
    day: Mapped[Day] = relationship(back_populates="sessions")
    items: Mapped[list[Item]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="Item.position"
    )


class Item(Base):
    """One entry of a session's run of show."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("summit_id", "guid", name="uq_item_summit_guid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    summit_id: Mapped[int] = mapped_column(ForeignKey("summits.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    guid: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[int | None] = mapped_column(Integer, default=None)
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="planned")
    title: Mapped[str] = mapped_column(String(500))
    subtitle: Mapped[str] = mapped_column(String(500), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(16), default="")
    track: Mapped[str] = mapped_column(String(200), default="")
    event_type: Mapped[str] = mapped_column(String(64), default="")
    do_not_record: Mapped[bool] = mapped_column(Boolean, default=False)
    planned_duration_s: Mapped[int] = mapped_column(Integer, default=0)

    session: Mapped[Session] = relationship(back_populates="items")
    speaker_links: Mapped[list[ItemSpeaker]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="ItemSpeaker.position"
    )


class Speaker(Base):
    """A person who speaks: name in any script, role line, country, bio, photo, language."""

    __tablename__ = "speakers"
    __table_args__ = (UniqueConstraint("summit_id", "guid", name="uq_speaker_summit_guid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    summit_id: Mapped[int] = mapped_column(ForeignKey("summits.id", ondelete="CASCADE"), index=True)
    guid: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[int | None] = mapped_column(Integer, default=None)
    name: Mapped[str] = mapped_column(String(300))
    role_line: Mapped[str] = mapped_column(String(300), default="")
    country: Mapped[str] = mapped_column(String(2), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(16), default="")
    photo: Mapped[str] = mapped_column(String(200), default="")  # file name in data/photos

    summit: Mapped[Summit] = relationship(back_populates="speakers")
    item_links: Mapped[list[ItemSpeaker]] = relationship(
        back_populates="speaker", cascade="all, delete-orphan"
    )


class ItemSpeaker(Base):
    """Who speaks in which item, in billing order."""

    __tablename__ = "item_speakers"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    speaker_id: Mapped[int] = mapped_column(
        ForeignKey("speakers.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)

    item: Mapped[Item] = relationship(back_populates="speaker_links")
    speaker: Mapped[Speaker] = relationship(back_populates="item_links")


class Location(Base):
    """A registered watch location: where it is (as coarse as its host chose) and its secret."""

    __tablename__ = "locations"
    # Newest arrivals and drops: read from the end of an index, not a sort of all (0011).
    __table_args__ = (
        Index("ix_locations_summit_id_last_online_at", "summit_id", "last_online_at"),
        Index("ix_locations_summit_id_last_offline_at", "summit_id", "last_offline_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    summit_id: Mapped[int] = mapped_column(ForeignKey("summits.id", ondelete="CASCADE"), index=True)
    # Random and url-safe: the location screen's address and the id inside heartbeat tokens.
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2), index=True)
    city: Mapped[str] = mapped_column(String(200), default="")  # "" when unknown or not kept
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    kind: Mapped[str] = mapped_column(String(32))
    expected_audience: Mapped[int] = mapped_column(Integer, default=1)
    contact: Mapped[str] = mapped_column(String(300), default="")
    privacy_level: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    # The link secret (the heartbeats' HMAC key) sealed with a key derived from the app's
    # secret key (services/link_secrets.py): the table alone opens no host's link.
    sealed_secret: Mapped[str] = mapped_column(String(128), default="")
    # A secret stored raw before migration 0015, "" once sealed (at the app's next start).
    unsealed_secret: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # Written in batches by the presence task: the dashboard's arrivals and drops.
    last_online_at: Mapped[datetime | None] = mapped_column(default=None)
    last_offline_at: Mapped[datetime | None] = mapped_column(default=None)
    # No person registered it: the demo's simulated audience (never counted elsewhere).
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)

    summit: Mapped[Summit] = relationship()


class LocationSettings(Base):
    """Per-summit settings of location registration."""

    __tablename__ = "location_settings"

    summit_id: Mapped[int] = mapped_column(
        ForeignKey("summits.id", ondelete="CASCADE"), primary_key=True
    )
    auto_approve: Mapped[bool] = mapped_column(Boolean, default=False)


class PresenceSample(Base):
    """Online locations of a summit at one instant, for reports (one row per summit and tick)."""

    __tablename__ = "presence_samples"
    # Ticks are aligned to the sampling interval, so several workers write one row, not N.
    __table_args__ = (
        UniqueConstraint("summit_id", "sampled_at", name="uq_presence_sample_summit_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    summit_id: Mapped[int] = mapped_column(ForeignKey("summits.id", ondelete="CASCADE"), index=True)
    sampled_at: Mapped[datetime]
    online_total: Mapped[int] = mapped_column(Integer)
    peak: Mapped[int] = mapped_column(Integer, default=0)
    # Country code -> online locations; hidden locations are counted under "ZZ".
    by_country: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)


class Broadcast(Base):
    """The broadcast state of one session: what is on air, and its ingest key."""

    __tablename__ = "broadcasts"

    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    summit_id: Mapped[int] = mapped_column(ForeignKey("summits.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="idle", index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    live: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped on every change, so a worker's report about a replaced cue changes nothing.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    countdown_to: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # After the last item the first comes again instead of the closing slate (the demo).
    loop: Mapped[bool] = mapped_column(Boolean, default=False)
    # The studio's RTMP stream key and SRT passphrase. Kept as is (the ingest must
    # compare it); never logged, shown only to the summit's producers and organisers.
    ingest_key: Mapped[str] = mapped_column(String(64))
    ingest_key_rotated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ItemMedia(Base):
    """One media file of an item: the programme file, or one language's audio or subtitles."""

    __tablename__ = "item_media"
    __table_args__ = (
        UniqueConstraint("item_id", "kind", "language", name="uq_item_media_item_kind_language"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # programme | audio | subtitles
    language: Mapped[str] = mapped_column(String(16), default="")  # "" for the programme file
    path: Mapped[str] = mapped_column(String(1000))
    # What probing found (duration, streams) or the problem that made the file unusable.
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SpeakerInvitation(Base):
    """A speaker's personal link to one item: signed, expiring, revocable."""

    __tablename__ = "speaker_invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    summit_id: Mapped[int] = mapped_column(ForeignKey("summits.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    speaker_id: Mapped[int] = mapped_column(
        ForeignKey("speakers.id", ondelete="CASCADE"), index=True
    )
    # Random, url-safe: the first part of the link's token; the rest is its signature.
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(254), default="")  # "" when not e-mailed
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    item: Mapped[Item] = relationship()
    speaker: Mapped[Speaker] = relationship()


class Upload(Base):
    """One file a speaker sends in chunks, from the first byte to its verdict."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The upload's address in the protocol; random so ids cannot be walked.
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    invitation_id: Mapped[int] = mapped_column(
        ForeignKey("speaker_invitations.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # programme | audio | subtitles
    language: Mapped[str] = mapped_column(String(16), default="")
    filename: Mapped[str] = mapped_column(String(255), default="")  # shown only, never used
    size: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    # The bytes before this offset are known to be on disk (a sync covered them); those
    # between it and received were written on the machine named by synced_on (its boot
    # id) and are checked against their CRC-32C if another machine, or the same one after
    # a restart, goes on with the upload (services.uploads.recover_unsynced).
    synced: Mapped[int] = mapped_column(BigInteger, default=0)
    synced_on: Mapped[str] = mapped_column(String(64), default="")
    expected_sha256: Mapped[str] = mapped_column(String(64), default="")
    # Hex SHA-256 of the whole file, set by the check job ("" until then). Uploads
    # finished between migrations 0008 and 0012 keep a hash list of chunk digests.
    sha256: Mapped[str] = mapped_column(String(64), default="")
    # Every chunk but the last has exactly this many bytes; 0: cannot be resumed.
    chunk_size: Mapped[int] = mapped_column(BigInteger, default=0)
    # The 4-byte CRC-32C (big-endian) of each stored chunk, concatenated in order.
    chunk_digests: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    # Who is writing the next chunk, and until when: a conditional UPDATE takes it, so two
    # app processes or nodes never write the same bytes of the file at once.
    claim: Mapped[str] = mapped_column(String(32), default="")
    claimed_until: Mapped[datetime | None]
    sniffed: Mapped[str] = mapped_column(String(32), default="")
    # Random file name inside settings.upload_dir; the speaker's file name is never used.
    stored_name: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="receiving", index=True)
    # Check findings ({"level", "message"} dicts) and probe facts, for speaker and organiser.
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    problem: Mapped[str] = mapped_column(Text, default="")
    output_path: Mapped[str] = mapped_column(String(1000), default="")
    poster_path: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime]


class Job(Base):
    """A unit of background work (probe, normalise), claimable by any worker on any node."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    upload_id: Mapped[int | None] = mapped_column(
        ForeignKey("uploads.id", ondelete="CASCADE"), default=None, index=True
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    message: Mapped[str] = mapped_column(Text, default="")  # the visible failure reason
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str] = mapped_column(String(100), default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Notice(Base):
    """A message to a speaker, shown in their portal (and e-mailed when SMTP is set up)."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    speaker_id: Mapped[int] = mapped_column(
        ForeignKey("speakers.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), default=None
    )
    level: Mapped[str] = mapped_column(String(16), default="info")  # info | problem | done
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    emailed_at: Mapped[datetime | None] = mapped_column(default=None)


class AttendanceCounts(Base):
    """One writer's heartbeat counts in one bucket of a summit, packed (added up on read).

    A row per (summit, bucket, writer) instead of a row per location and bucket: 50,000
    locations over 4 days are ~1,200 rows, not ~20 million, so the report reads a few
    hundred megabytes of arrays instead of walking an index of millions of rows.
    """

    __tablename__ = "attendance_counts"

    summit_id: Mapped[int] = mapped_column(
        ForeignKey("summits.id", ondelete="CASCADE"), primary_key=True
    )
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds, UTC
    # Who wrote the row (a recorder's random id): only that writer ever updates it, so
    # workers never contend for a row and the sum over writers is the bucket's count.
    writer: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Little-endian int32 location ids, ascending, and uint32 heartbeats in the same order.
    # No foreign key per id: a deleted location's id is skipped when read.
    location_ids: Mapped[bytes] = mapped_column(LargeBinary)
    heartbeats: Mapped[bytes] = mapped_column(LargeBinary)


class AttendancePublication(Base):
    """One publication of a summit's signed attendance log: the file and its final head."""

    __tablename__ = "attendance_publications"

    id: Mapped[int] = mapped_column(primary_key=True)
    summit_id: Mapped[int] = mapped_column(ForeignKey("summits.id", ondelete="CASCADE"), index=True)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    # File name inside data_dir/attendance/<slug>/; never a path chosen by a request.
    log_file: Mapped[str] = mapped_column(String(200))
    log_sha256: Mapped[str] = mapped_column(String(64))
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(64))  # raw Ed25519, base64
    # The published (k-suppressed) figures, as written in the log's figures record.
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class GreenRoomFeed(Base):
    """A live speaker's own ingest into a session's green room (issue 5)."""

    __tablename__ = "greenroom_feeds"
    __table_args__ = (
        UniqueConstraint("session_id", "speaker_id", name="uq_greenroom_feeds_session_speaker"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    summit_id: Mapped[int] = mapped_column(ForeignKey("summits.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    speaker_id: Mapped[int] = mapped_column(
        ForeignKey("speakers.id", ondelete="CASCADE"), index=True
    )
    # The speaker's RTMP stream key and SRT passphrase; like the studio key, never logged.
    ingest_key: Mapped[str] = mapped_column(String(64))
    # Port offset of this feed's listeners (green-room base port + slot), fixed while open,
    # so the URL given to the speaker stays valid whichever node renders it.
    slot: Mapped[int] = mapped_column(Integer)
    # True while this feed is the broadcast's live input (the producer "took" it)...
    taken: Mapped[bool] = mapped_column(Boolean, default=False)
    # ...and only as long as the broadcast's generation is still the one the take made:
    # any later change (hold, next item, end, a restart) ends the take.
    taken_generation: Mapped[int | None] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """An organiser's security-relevant action: who did what to which object, and when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    summit_id: Mapped[int] = mapped_column(ForeignKey("summits.id", ondelete="CASCADE"), index=True)
    # Kept when the user is deleted (the event stays, its author becomes unknown).
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    action: Mapped[str] = mapped_column(String(64))  # e.g. "location.link_reissued"
    # The object acted on, as "<kind>:<row id>"; never a secret and never an address.
    subject: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


from summitcast.storage import leases as _leases  # noqa: E402, F401  (its table joins Base.metadata)
