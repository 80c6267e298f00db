"""create_app(settings): wires the back-ends, middleware and routes into one ASGI app."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.middleware.sessions import SessionMiddleware

from summitcast import __version__, geo
from summitcast.config import Settings
from summitcast.media.segment_store import SessionStores
from summitcast.presence import Presence, PresenceUnavailableError, PubSub, create_backends
from summitcast.runtime.attendance import AttendanceTasks
from summitcast.runtime.broadcast_manager import BroadcastManager
from summitcast.runtime.greenroom import GreenRoomManager
from summitcast.runtime.job_worker import JobWorker
from summitcast.runtime.presence_tasks import PresenceTasks
from summitcast.runtime.upload_jobs import UploadJobs, chunk_store
from summitcast.runtime.webrtc import BrowserContributions
from summitcast.services.accounts import account_delay, rate_limiter
from summitcast.services.attendance import AttendanceRecorder, LivePublisher
from summitcast.services.demo_presence import DemoAudience
from summitcast.services.link_secrets import seal_stored_raw
from summitcast.services.live import LiveService
from summitcast.services.reports import ReportCache
from summitcast.services.speakers import link_secret
from summitcast.services.upload_protocol import UploadProtocol
from summitcast.services.uploads import ChunkStore
from summitcast.storage.database import Database, connection_lost
from summitcast.web.edge import EdgeMiddleware, TextFieldGuard, install_edge_handlers
from summitcast.web.errors import answer_503_while_away, install_error_handlers
from summitcast.web.proxies import TrustedProxies
from summitcast.web.routes import (
    api,
    auth,
    backstage,
    broadcast,
    contribute,
    greenroom,
    hls,
    icons,
    live,
    locations,
    public,
    reports,
    second_factor,
    speakers,
)
from summitcast.web.security import (
    BodyLimitMiddleware,
    SecurityHeadersMiddleware,
    security_headers,
)
from summitcast.web.templating import make_templates
from summitcast.web.transport.heartbeat import HeartbeatFastPath
from summitcast.web.transport.presence_protocol import backend_unavailable
from summitcast.web.transport.presence_socket import PresenceSockets
from summitcast.web.transport.uploads import UploadChunkFastPath

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "web" / "static"
# Every router the app serves; tests walk these to check access on each route.
ROUTERS = (
    # First: FastAPI tries routes in order, and the heartbeat and presence socket are by
    # far the most frequent requests (routing past ~80 routes cost more than the beat).
    live.router,
    auth.router,
    public.router,
    backstage.router,
    api.router,
    locations.router,
    locations.backstage_router,
    live.backstage_router,
    broadcast.router,
    broadcast.backstage_router,
    greenroom.backstage_router,
    hls.router,
    speakers.router,
    speakers.backstage_router,
    contribute.router,
    reports.router,
    reports.backstage_router,
    icons.router,
    second_factor.router,
)


@dataclass(frozen=True)
class _Parts:
    """The back-ends, use cases and runtime objects of one app, wired to each other."""

    settings: Settings
    db: Database
    live: LiveService
    attendance: AttendanceRecorder
    attendance_tasks: AttendanceTasks
    presence_sockets: PresenceSockets
    presence_tasks: PresenceTasks
    segment_stores: SessionStores
    broadcasts: BroadcastManager
    green_room: GreenRoomManager
    browser_live: BrowserContributions
    upload_store: ChunkStore
    upload_protocol: UploadProtocol
    upload_jobs: UploadJobs
    job_worker: JobWorker | None


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    presence: Presence | None = None,
    pubsub: PubSub | None = None,
) -> FastAPI:
    """Build the summitcast ASGI app from its settings (tests may hand in back-ends)."""
    db = database or Database(settings.effective_database_url)
    if settings.auto_migrate:
        db.upgrade()
    if presence is None or pubsub is None:
        presence, pubsub = create_backends(settings)
    # Link secrets stored raw before migration 0015 (a migration cannot read the app key).
    seal_stored_raw(db, settings)
    parts = _wire(settings, db, presence, pubsub)
    app = FastAPI(
        title="summitcast",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=_lifespan(parts, dispose=database is None),
    )
    _publish(app, parts)
    _add_middleware(app, parts)
    # 404, 405 and 413 as a page for browsers; values the database refuses as 400.
    install_edge_handlers(app, data_errors=(DataError,))
    install_error_handlers(app)
    _answer_503_while_away(app, settings)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app


def _wire(settings: Settings, db: Database, presence: Presence, pubsub: PubSub) -> _Parts:
    """Build every long-lived object of the app and hand each the others it needs."""
    live_service = LiveService(settings=settings, database=db, presence=presence, pubsub=pubsub)
    # Counts every accepted heartbeat into its bucket in memory; flushed by its task.
    attendance = AttendanceRecorder(settings.attendance_bucket_s)
    live_service.on_accepted = attendance.count
    # Presence sockets served before ASGI under `summitcast serve` (web/transport/).
    presence_sockets = PresenceSockets(live_service)
    # `summitcast demo`: simulated screens of demo summits beat through live_service. One
    # process per node runs them (the one with the encoders), or each worker would add its own.
    audience = (
        DemoAudience(live_service)
        if settings.demo_audience and settings.broadcast_workers
        else None
    )
    # Each session's HLS store: filled by this node's playouts, served by any node.
    segment_stores = SessionStores(
        settings.segment_store, settings.effective_segment_dir, settings.encoder_name
    )
    # Its stream health reaches control rooms on every worker through the pub/sub.
    broadcasts = BroadcastManager(settings, db, pubsub=pubsub, stores=segment_stores)
    presence_sockets.on_air.health = broadcasts.health  # screens play once a stream is ready
    # Live speakers' own feeds, previewed before the producer takes one on air.
    green_room = GreenRoomManager(settings, db, broadcasts)
    upload_store = chunk_store(settings)
    upload_jobs = UploadJobs(settings, db, upload_store)
    job_worker = _job_worker(settings, db, upload_jobs)
    return _Parts(
        settings=settings,
        db=db,
        live=live_service,
        attendance=attendance,
        # Appends closed buckets to live attendance logs and signs a new head each interval.
        attendance_tasks=AttendanceTasks(settings, db, attendance, LivePublisher(settings, db)),
        presence_sockets=presence_sockets,
        # Sweeps timed-out locations, publishes figures, samples counts for reports.
        presence_tasks=PresenceTasks(live_service, audience),
        segment_stores=segment_stores,
        broadcasts=broadcasts,
        green_room=green_room,
        # Speakers going live from their browser: WebRTC peers pushing to their feed.
        browser_live=BrowserContributions(settings, green_room),
        upload_protocol=UploadProtocol(
            db,
            upload_store,
            link_secret(settings),
            kick=job_worker.kick if job_worker is not None else None,
        ),
        upload_store=upload_store,
        upload_jobs=upload_jobs,
        job_worker=job_worker,
    )


def _job_worker(settings: Settings, db: Database, upload_jobs: UploadJobs) -> JobWorker | None:
    """Probes and normalises uploads; durable in the database, so another node may do it."""
    if not settings.job_workers:
        return None
    return JobWorker(
        db,
        upload_jobs.handlers(),
        poll_interval_s=settings.job_poll_interval_s,
        periodic=upload_jobs.periodic(),
        on_failure=upload_jobs.failure_hooks(),
    )


def _lifespan(
    parts: _Parts, *, dispose: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the background work with the app, and stop it in the reverse order."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await parts.presence_tasks.start()
        parts.presence_sockets.start()
        # Moves closed attendance buckets into the database; advances the live logs.
        parts.attendance_tasks.start()
        # Plays every session on air; sessions left on air by a previous run resume.
        await parts.broadcasts.start()
        await parts.green_room.start()
        if parts.job_worker is not None:
            await parts.job_worker.start()
        # The city index takes ~1 s to build (over 10 s on a loaded machine): build it
        # now, off the loop, so the first registration does not wait for it, and
        # before gc.freeze() so its objects are not scanned by every collection.
        await asyncio.to_thread(geo.city_index)
        _tune_gc(parts.settings)
        gc_watch = _log_long_collections()
        try:
            yield
        finally:
            gc.callbacks.remove(gc_watch)
            if parts.job_worker is not None:
                await parts.job_worker.stop()
            await parts.browser_live.close()
            await parts.green_room.stop()
            await parts.broadcasts.stop()
            await parts.presence_sockets.stop()
            await parts.presence_tasks.stop()
            # Writes the open bucket too: the next worker's counts add to it.
            await parts.attendance_tasks.stop()
            if dispose:
                parts.db.dispose()

    return lifespan


def _publish(app: FastAPI, parts: _Parts) -> None:
    """Put what the web edge's dependencies hand to routes (web/deps.py) on app.state."""
    settings = parts.settings
    app.state.settings = settings
    app.state.database = parts.db
    app.state.broadcasts = parts.broadcasts
    app.state.hls_origin = parts.segment_stores
    app.state.greenroom = parts.green_room
    app.state.browser_live = parts.browser_live
    app.state.live = parts.live
    app.state.presence_sockets = parts.presence_sockets
    app.state.attendance = parts.attendance
    app.state.reports = ReportCache(settings, parts.db)
    app.state.upload_store = parts.upload_store
    app.state.upload_jobs = parts.upload_jobs
    app.state.job_worker = parts.job_worker
    app.state.upload_protocol = parts.upload_protocol
    app.state.templates = make_templates()
    _publish_limiters(app, settings)


def _publish_limiters(app: FastAPI, settings: Settings) -> None:
    """The rate limits and login delay, shared by every worker through Redis when configured."""
    secret = settings.secret_key.get_secret_value().encode()
    shared = {"redis_url": settings.redis_url, "redis_prefix": settings.redis_prefix}
    app.state.login_limiter = rate_limiter(
        name="login",
        limit=settings.login_attempts_per_15_min,
        window_s=15 * 60,
        salt=secret,
        **shared,
    )
    # Per account, whatever the client: each wrong password doubles the wait before the
    # account's next check (capped), so no address can guess fast nor lock staff out.
    app.state.login_delay = account_delay(
        name="login-account",
        base_s=settings.login_account_delay_s,
        cap_s=settings.login_account_delay_max_s,
        salt=secret + b"/login-account",
        **shared,
    )
    # Second-factor codes and passkey answers per account: ten a quarter hour, so six
    # digits cannot be guessed (web/routes/second_factor.py).
    app.state.second_factor_limiter = rate_limiter(
        name="second-factor", limit=10, window_s=15 * 60, salt=secret + b"/2fa", **shared
    )
    # Its own salt: a registration key never equals a login key of the same client.
    app.state.registration_limiter = rate_limiter(
        name="registration",
        limit=settings.registrations_per_hour,
        window_s=3600,
        salt=secret + b"/registration",
        **shared,
    )


def _add_middleware(app: FastAPI, parts: _Parts) -> None:
    """The middleware stack, innermost first (each added one wraps the ones before)."""
    settings = parts.settings
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key.get_secret_value(),
        session_cookie="summitcast_session",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.cookies_secure,  # Secure: always in production
    )
    headers = security_headers(strict_transport=settings.strict_transport)
    # Inside the body cap, which bounds the form and JSON bodies it checks (web/edge.py).
    app.add_middleware(TextFieldGuard)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_import_bytes + 64 * 1024)
    app.add_middleware(SecurityHeadersMiddleware, headers=headers)
    # A speaker's upload chunk skips them too (its link authenticates it; the chunk plan
    # caps its length): ~0.2 s of server CPU per GiB (web/transport/uploads.py).
    app.add_middleware(UploadChunkFastPath, protocol=parts.upload_protocol, headers=headers)
    # Malformed paths and queries refused before routing, and a 500 without a traceback
    # per request for whatever escapes; heartbeats and presence sockets skip it.
    app.add_middleware(EdgeMiddleware, headers=headers)
    # Heartbeats skip the session (they carry none), routing, dependencies and the other
    # middleware; it applies its own body cap and headers.
    app.add_middleware(
        HeartbeatFastPath, live=parts.live, sockets=parts.presence_sockets, headers=headers
    )
    if settings.trusted_proxies:
        # Outermost (added last): every layer, fast paths and rate limits included, sees
        # the client the trusted proxy forwarded (web/proxies.py).
        app.add_middleware(TrustedProxies, trusted=settings.trusted_proxies)


def _answer_503_while_away(app: FastAPI, settings: Settings) -> None:
    """503 with Retry-After, not 500, while Redis or the database cannot be reached."""
    if settings.redis_url:
        answer_503_while_away(
            app,
            "presence back-end",
            (PresenceUnavailableError,),
            reply=lambda _request: backend_unavailable(),
        )
    database_errors: list[type[Exception]] = [OperationalError, InterfaceError]
    database_errors.append(PoolTimeoutError)
    psycopg = sys.modules.get("psycopg")  # loaded by a PostgreSQL engine only
    if psycopg is not None:
        # Raised bare where code holds a psycopg connection of its own (LISTEN, COPY).
        database_errors.append(psycopg.OperationalError)
    answer_503_while_away(
        app,
        "database",
        tuple(database_errors),
        is_outage=lambda error: isinstance(error, PoolTimeoutError) or connection_lost(error),
    )


def _log_long_collections(threshold_s: float = 0.1) -> Callable[[str, dict[str, int]], None]:
    """Log each full garbage collection that pauses this worker past threshold_s (installed)."""
    # A full collection scans every tracked object of the worker: with thousands of
    # sockets it can hold the event loop for seconds, which shows as heartbeat latency.
    started: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            took = time.perf_counter() - started.pop()
            if took >= threshold_s:
                log.warning(
                    "full garbage collection paused this worker %.0f ms "
                    "(%d objects freed, %d frozen out of its scans)",
                    took * 1000,
                    info["collected"],
                    gc.get_freeze_count(),
                )

    gc.callbacks.append(callback)
    return callback


def _tune_gc(settings: Settings) -> None:
    """Freeze the objects of start-up out of GC scans and space out young collections."""
    if not settings.gc_freeze:
        return
    gc.collect()  # garbage of start-up goes now: frozen garbage would never be freed
    gc.freeze()
    # Full collections start only after 10 middle ones, each after 10 young ones; a
    # larger young threshold means fewer short-lived objects are caught alive in flight
    # and promoted, so the oldest generation (every socket) is rescanned far less often.
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(settings.gc_young_threshold, middle, oldest)


def app_from_environment() -> FastAPI:
    """App factory for uvicorn workers: Settings from SUMMITCAST_* variables."""
    settings = Settings()
    lock = _broadcast_lock(settings) if settings.broadcast_workers else None
    if settings.broadcast_workers and lock is None:
        # `serve --workers N`: the encoders and listeners bind ports and write one HLS
        # folder, so one process of the node runs them; the others serve pages and reach
        # it through the database and the pub/sub, as other nodes do.
        settings = settings.model_copy(update={"broadcast_workers": False})
    app = create_app(settings)
    app.state.broadcast_lock = lock  # held while this process lives
    return app


def _broadcast_lock(settings: Settings) -> IO[bytes] | None:
    """An exclusive lock on the data folder's broadcast.lock, or None if another holds it."""
    # flock, not a pid file: the kernel releases it when its holder dies, so the worker
    # uvicorn starts in place of a dead one takes the broadcast over.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    handle = (settings.data_dir / "broadcast.lock").open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle
