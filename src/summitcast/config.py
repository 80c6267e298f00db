"""Settings: one typed object, read from SUMMITCAST_* variables and an optional TOML file."""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
from importlib import resources
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from summitcast.errors import ConfigurationError

DEVELOPMENT_SECRET = "development-only-secret-change-me"  # noqa: S105 - refused outside development
# Live interpreters: one RTMP and one SRT listener per language, up to this many per session.
INTERPRETER_PORTS_PER_SESSION = 16


AT_RISK_FILE = "data/at_risk_countries.txt"


def shipped_at_risk_countries() -> frozenset[str]:
    """The at-risk country codes shipped with summitcast (its data file, comments dropped)."""
    text = resources.files("summitcast").joinpath(AT_RISK_FILE).read_text(encoding="utf-8")
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(line.split()[0].upper() for line in lines if line)


class Settings(BaseSettings):
    """Everything summitcast can be configured with; passed into create_app()."""

    model_config = SettingsConfigDict(
        env_prefix="SUMMITCAST_",
        extra="ignore",
        toml_file=os.environ.get("SUMMITCAST_CONFIG_FILE", "summitcast.toml"),
    )

    environment: Literal["development", "test", "production"] = "development"
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    data_dir: Path = Path("data")
    database_url: str = ""  # empty: a SQLite file inside data_dir
    redis_url: str = ""  # empty: in-process presence and pub/sub
    redis_prefix: str = "summitcast"
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    session_max_age_s: int = 12 * 3600
    login_attempts_per_15_min: int = 10
    max_photo_bytes: int = 5 * 1024 * 1024
    max_import_bytes: int = 20 * 1024 * 1024
    # k-anonymity: no public cell shows fewer than this many locations.
    k_anonymity: int = Field(default=5, ge=1)
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    heartbeat_timeout_s: float = Field(default=35.0, gt=0)
    # How far a heartbeat's client timestamp may stray from the server's wall clock.
    heartbeat_max_skew_s: float = Field(default=300.0, gt=0)
    # Online counts go into presence_samples every this many seconds (for reports).
    presence_sample_interval_s: float = Field(default=60.0, gt=0)
    # How often timed-out locations are swept; lateness only, never early (see presence).
    presence_sweep_interval_s: float = Field(default=1.0, gt=0)
    # Pushes of live figures to one browser: at most one per this many seconds.
    live_push_interval_s: float = Field(default=1.0, ge=0)
    # Move everything alive after start-up out of the garbage collector's sight: full
    # collections over 10k sockets paused a worker 0.6-0.8 s, ~0.2 s with it (VERIFIED.md).
    # Off by default so test processes that build many apps keep freeing their garbage;
    # `summitcast serve` turns it on.
    gc_freeze: bool = False
    # With gc_freeze: allocations between two young collections (CPython's default is
    # 700). At thousands of heartbeats a second the default promoted every in-flight
    # heartbeat's objects and made full collections of 0.1–0.6 s every few seconds;
    # 50,000 left none over 100 ms at 30,000 sockets (benchmarks/README.md).
    gc_young_threshold: int = Field(default=50_000, ge=100)
    # ISO codes whose hosts are steered to country-only privacy ("IR,BY" or a JSON list);
    # unset or empty: the list shipped in summitcast/data/at_risk_countries.txt; "none" or
    # "[]": no country at all.
    at_risk_countries: Annotated[frozenset[str], NoDecode] = Field(
        default_factory=shipped_at_risk_countries
    )
    # Reverse proxies whose X-Forwarded-For/-Proto are believed ("127.0.0.1,10.0.0.0/8" or a
    # JSON list of addresses and networks); empty: the peer's own address is the client's.
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()
    # Each wrong password for an account doubles the wait before its next one is checked,
    # from login_account_delay_s up to login_account_delay_max_s; a right one resets it.
    login_account_delay_s: float = Field(default=1.0, gt=0)
    login_account_delay_max_s: float = Field(default=60.0, gt=0)
    # Registrations one client may send per hour (counted under a salted hash, in memory).
    registrations_per_hour: int = Field(default=5, ge=1)
    segment_dir: Path | None = None  # empty: data_dir / "hls"
    # Where HLS is stored and served from: "local" is segment_dir, which ffmpeg writes
    # into directly; "memory" keeps it in this process (published from ffmpeg's folder).
    segment_store: Literal["local", "memory"] = "local"
    # Run playout encoders and ingest listeners in this process. With several app
    # nodes exactly one sets this; the others only serve pages and HLS files. Within a
    # node (`serve --workers N`) one worker takes it, by a lock in data_dir.
    broadcast_workers: bool = True
    # Redundant encoders (docs/deploy.md): two broadcast nodes run every session at once,
    # each named here; the master playlist lists each rendition once per name, under
    # enc-<name>/, so a player whose origin stops answering continues from the other.
    # Empty: one encoder, no enc-<name>/ folder (the embedded default).
    encoder_name: str = Field(default="", pattern=r"^[a-z0-9]{0,8}$")
    encoder_names: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Where studios reach each encoder's ingest, in encoder_names order: a live studio
    # pushes to every one of them (the control room lists them all). Empty: ingest_public_host.
    encoder_ingest_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The primary of the pair holds a lease in the database (renewed every third of it).
    encoder_lease_s: float = Field(default=6.0, gt=0)
    # A name for this node in logs, health and the cluster harness ("" : the host name).
    node_name: str = ""
    # "default": 1080p/720p/480p/360p + audio-only; "small": 360p/240p for 2-core demos.
    broadcast_ladder: Literal["default", "small"] = "default"
    # Simulated watch locations coming and going in demo summits (`summitcast demo` sets it).
    demo_audience: bool = False
    broadcast_preset: str = "veryfast"  # x264 preset of the ladder
    broadcast_fps: int = Field(default=30, ge=1, le=60)
    # Below this many MiB free on the segment disk the control room raises an alarm.
    broadcast_min_free_mb: int = Field(default=200, ge=0)
    ingest_host: str = "127.0.0.1"  # where RTMP/SRT listen; 0.0.0.0 to accept studios
    ingest_public_host: str = ""  # shown to producers; empty: the host of base_url
    ingest_rtmp_port: int = 1935  # first session on air; the next ones take +1, +2…
    ingest_srt_port: int = 9000
    # Live interpreters send audio only, one RTMP/SRT input per language, on
    # base + 16 × session slot + language index (the session's key, same rules as studios).
    ingest_interpreter_rtmp_port: int = 2935
    ingest_interpreter_srt_port: int = 9100
    # Live speakers' own ingest (the green room): feed n listens on base + n.
    greenroom_rtmp_port: int = 3935
    greenroom_srt_port: int = 9400  # above the interpreters' 9100 + 16 × sessions
    # Each session on air and each open green-room feed takes ports from the bases above;
    # these caps bound the ranges, which Settings refuses to let overlap (port_ranges).
    broadcast_max_sessions: int = Field(default=16, ge=1)
    greenroom_max_feeds: int = Field(default=32, ge=1)
    greenroom_preview_fps: float = Field(default=2.0, gt=0, le=10)  # thumbnails a second
    # Going live from the browser (WebRTC): STUN/TURN URLs for the browser and the server's
    # peer, "stun:host:3478,turn:host:3478" or a JSON list; empty (the default): host
    # candidates only, so no third party learns who is speaking (threat model).
    webrtc_ice_servers: Annotated[list[str], NoDecode] = []
    webrtc_ice_username: str = ""  # for a TURN server of ours
    webrtc_ice_credential: SecretStr = SecretStr("")
    # Addresses the server's peer offers; empty: every interface's but loopback (aioice's
    # choice). "127.0.0.1" for a browser on the same machine; a LAN address to pin one.
    webrtc_host_addresses: Annotated[list[str], NoDecode] = []
    # Speaker uploads (issue 5). Partial and finished uploads live here, outside the web
    # root, under random names; empty: data_dir / "uploads".
    upload_dir: Path | None = None
    # Files every node of a cluster reads and writes (docs/deploy.md): attendance logs and
    # each summit's keys, speaker photos, reports. Empty: data_dir (one node).
    shared_dir: Path | None = None
    # Normalised programme files and poster frames; empty: data_dir / "media".
    media_dir: Path | None = None
    max_upload_bytes: int = Field(default=8 * 1024**3, gt=0)
    # Largest chunk one PATCH may carry: stays below the request body cap
    # (max_import_bytes + 64 KiB), so uploads need no exception in BodyLimitMiddleware.
    upload_chunk_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # A partial upload untouched this long is deleted by the cleanup task.
    upload_partial_expiry_s: float = Field(default=48 * 3600.0, gt=0)
    upload_sweep_interval_s: float = Field(default=300.0, gt=0)
    # How long a speaker's personal link stays valid.
    invitation_valid_days: int = Field(default=60, ge=1, le=366)
    # Run the job queue (probe, normalise) in this process; other nodes may run it instead.
    job_workers: bool = True
    job_poll_interval_s: float = Field(default=1.0, gt=0)
    # What every pre-recorded file is conformed to before playout.
    programme_width: int = Field(default=1920, ge=16)
    programme_height: int = Field(default=1080, ge=16)
    programme_fps: int = Field(default=30, ge=1, le=60)
    programme_loudness_lufs: float = Field(default=-23.0, le=-5, ge=-50)
    normalise_preset: str = "veryfast"  # x264 preset of normalised programme files
    # E-mail to speakers only when an SMTP server is configured; empty host: portal only.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = ""
    smtp_starttls: bool = True
    # Attendance counting rule (docs/counting.md); written into every published log.
    attendance_bucket_s: int = Field(default=300, ge=1)
    attendance_min_heartbeats: int = Field(default=3, ge=1)
    attendance_session_min_percent: int = Field(default=10, ge=0, le=100)
    # Closed buckets go from each worker's memory to attendance_buckets this often.
    attendance_flush_interval_s: float = Field(default=30.0, gt=0)
    # A live attendance log gets its closed buckets and a new signed head this often.
    attendance_head_interval_s: float = Field(default=300.0, gt=0)
    # A built attendance report is served from cache for this long (a build takes seconds).
    report_cache_s: float = Field(default=120.0, ge=0)
    # Production always sends the session cookie with Secure (cookies_secure); this turns
    # it on in development and test too (behind HTTPS there), never off in production.
    secure_cookies: bool = False
    auto_migrate: bool = True  # upgrade the schema when the app starts

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read arguments first, then the environment, then the TOML file."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator("at_risk_countries", mode="before")
    @classmethod
    def _split_countries(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                # An empty variable (a template's unset placeholder, say) keeps the shipped
                # list: turning the protection off takes an explicit "none".
                return shipped_at_risk_countries()
            if text.lower() == "none":
                return frozenset()
            value = json.loads(text) if text.startswith("[") else text.replace(",", " ").split()
        if isinstance(value, list | tuple | set | frozenset):
            codes = frozenset(str(code).strip().upper() for code in value if str(code).strip())
            for code in codes:
                if len(code) != 2 or not code.isascii() or not code.isalpha():
                    raise ValueError(f"{code!r} is not a two-letter ISO 3166 country code")
            return codes
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.replace(",", " ").split()
        if isinstance(value, list | tuple):
            # ValueError names the entry: "10.0.0.1/8 has host bits set", say.
            return tuple(ipaddress.ip_network(str(entry).strip()) for entry in value)
        return value

    @field_validator(
        "webrtc_ice_servers",
        "webrtc_host_addresses",
        "encoder_names",
        "encoder_ingest_hosts",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else text.replace(",", " ").split()
        return value

    @field_validator("webrtc_ice_servers")
    @classmethod
    def _ice_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if url.split(":", 1)[0] not in ("stun", "stuns", "turn", "turns"):
                raise ValueError(f"{url!r} is not a stun:, stuns:, turn: or turns: URL")
        return value

    @field_validator("webrtc_host_addresses")
    @classmethod
    def _ip_addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            ipaddress.ip_address(address)  # ValueError names the address that is not one
        return value

    @model_validator(mode="after")
    def _encoder_pair(self) -> Settings:
        for name in self.encoder_names:
            if (
                not name
                or len(name) > 8
                or not (name.isascii() and name.isalnum())
                or name != name.lower()
            ):
                raise ValueError(f"encoder name {name!r}: 1 to 8 lower-case letters or digits")
        if self.encoder_ingest_hosts and len(self.encoder_ingest_hosts) != len(self.encoder_names):
            raise ValueError("encoder_ingest_hosts must name one host per encoder in encoder_names")
        if len(set(self.encoder_names)) != len(self.encoder_names):
            raise ValueError("encoder_names lists a name twice")
        if self.encoder_name and self.encoder_name not in self.encoder_names:
            raise ValueError(
                f"encoder_name {self.encoder_name!r} is not one of encoder_names "
                f"({', '.join(self.encoder_names) or 'empty'})"
            )
        return self

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.environment != "development" and (
            self.secret_key.get_secret_value() == DEVELOPMENT_SECRET
            or len(self.secret_key.get_secret_value()) < 32
        ):
            raise ConfigurationError(
                "SUMMITCAST_SECRET_KEY must be set to a random value of at least 32 characters "
                "outside development "
                "(try: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return self

    @model_validator(mode="after")
    def _refuse_plain_http_in_production(self) -> Settings:
        if (
            self.environment == "production"
            and not self.base_url.lower().startswith("https://")
            and not self.trusted_proxies
        ):
            raise ConfigurationError(
                f"SUMMITCAST_BASE_URL is {self.base_url!r}, but production serves over HTTPS "
                "only: set it to the https:// address people use, or, when a reverse proxy in "
                "front terminates TLS, name that proxy in SUMMITCAST_TRUSTED_PROXIES (its "
                "address, e.g. 127.0.0.1)."
            )
        if self.login_account_delay_max_s < self.login_account_delay_s:
            raise ConfigurationError(
                "SUMMITCAST_LOGIN_ACCOUNT_DELAY_MAX_S must be at least "
                f"SUMMITCAST_LOGIN_ACCOUNT_DELAY_S ({self.login_account_delay_s})."
            )
        return self

    @property
    def cookies_secure(self) -> bool:
        """Whether the session cookie carries Secure: always in production."""
        return self.environment == "production" or self.secure_cookies

    @property
    def strict_transport(self) -> bool:
        """Whether responses carry HSTS (production, where browsers reach us over HTTPS)."""
        return self.environment == "production"

    def port_ranges(self) -> dict[str, tuple[str, range]]:
        """Every fixed listener port range (setting → protocol, ports) these settings open."""
        sessions, feeds = self.broadcast_max_sessions, self.greenroom_max_feeds
        languages = INTERPRETER_PORTS_PER_SESSION * sessions
        return {
            "ingest_rtmp_port": (
                "tcp",
                range(self.ingest_rtmp_port, self.ingest_rtmp_port + sessions),
            ),
            "ingest_srt_port": (
                "udp",
                range(self.ingest_srt_port, self.ingest_srt_port + sessions),
            ),
            "ingest_interpreter_rtmp_port": (
                "tcp",
                range(
                    self.ingest_interpreter_rtmp_port, self.ingest_interpreter_rtmp_port + languages
                ),
            ),
            "ingest_interpreter_srt_port": (
                "udp",
                range(
                    self.ingest_interpreter_srt_port, self.ingest_interpreter_srt_port + languages
                ),
            ),
            "greenroom_rtmp_port": (
                "tcp",
                range(self.greenroom_rtmp_port, self.greenroom_rtmp_port + feeds),
            ),
            "greenroom_srt_port": (
                "udp",
                range(self.greenroom_srt_port, self.greenroom_srt_port + feeds),
            ),
        }

    @model_validator(mode="after")
    def _refuse_overlapping_ports(self) -> Settings:
        # SRT (UDP) and RTMP (TCP) ports may share numbers; two listeners of one kind may not.
        for protocol in ("tcp", "udp"):
            ranges = sorted(
                (
                    (name, ports)
                    for name, (kind, ports) in self.port_ranges().items()
                    if kind == protocol
                ),
                key=lambda entry: entry[1].start,
            )
            for (low_name, low), (high_name, high) in itertools.pairwise(ranges):
                if high.start < low.stop:
                    raise ConfigurationError(
                        f"Listener ports overlap: {low_name} uses {low.start}-{low.stop - 1} and "
                        f"{high_name} uses {high.start}-{high.stop - 1} (with "
                        f"broadcast_max_sessions={self.broadcast_max_sessions}, "
                        f"greenroom_max_feeds={self.greenroom_max_feeds}). Move one base port "
                        "or lower a cap."
                    )
            if ranges[0][1].start < 1 or ranges[-1][1].stop > 65536:
                raise ConfigurationError(
                    f"Listener ports must lie within 1-65535; {protocol.upper()} ranges reach "
                    f"{ranges[0][1].start}-{ranges[-1][1].stop - 1}."
                )
        return self

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'summitcast.db').resolve()}"

    @property
    def effective_segment_dir(self) -> Path:
        """Where HLS segments are written by default."""
        return self.segment_dir or self.data_dir / "hls"

    @property
    def effective_upload_dir(self) -> Path:
        """Where speaker uploads are stored (never served directly)."""
        return self.upload_dir or self.data_dir / "uploads"

    @property
    def attendance_dir(self) -> Path:
        """Published attendance logs and each summit's signing key and audit secret."""
        return (self.shared_dir or self.data_dir) / "attendance"

    @property
    def photo_dir(self) -> Path:
        """Sanitised speaker photos (served by every node)."""
        return (self.shared_dir or self.data_dir) / "photos"

    @property
    def report_dir(self) -> Path:
        """Organiser reports, a folder per summit."""
        return (self.shared_dir or self.data_dir) / "reports"

    @property
    def effective_media_dir(self) -> Path:
        """Where normalised programme files and posters are written."""
        return self.media_dir or self.data_dir / "media"
