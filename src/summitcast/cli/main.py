"""The summitcast command line: demo, serve, db, user, programme."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from summitcast.cli.audit import audit_app
from summitcast.cli.cluster import cluster_app
from summitcast.cli.data import (
    DatabaseUrlOption,
    DataDirOption,
    open_database,
    redact,
    require_database,
    settings_for,
)
from summitcast.cli.deploy import deploy_app
from summitcast.cli.loadtest import loadtest_app
from summitcast.cli.locations import locations_app
from summitcast.cli.report import report_app
from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.errors import SummitcastError
from summitcast.storage.database import Database

if TYPE_CHECKING:
    from summitcast.services.demo import DemoSummit

app = typer.Typer(
    help=(
        "summitcast: run a global online summit. Every command reads the data folder ./data "
        "(--data-dir or SUMMITCAST_DATA_DIR), where `summitcast demo` writes too. "
        "Exit codes: 0 success, 1 a check failed, 2 bad input or no database."
    ),
    no_args_is_help=True,
    # A mistake on the command line gets one line (main() below), not a traceback of typer.
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(help="Accounts.", no_args_is_help=True)
programme_app = typer.Typer(help="Import and export the programme.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(programme_app, name="programme")
app.add_typer(audit_app, name="audit")
app.add_typer(report_app, name="report")
app.add_typer(locations_app, name="locations")
app.add_typer(loadtest_app, name="loadtest")
app.add_typer(deploy_app, name="deploy")
app.add_typer(cluster_app, name="cluster")

console = Console(soft_wrap=True)  # URLs and credentials must stay on one line
# Never wrapped: piped to a file or a log (no terminal) Rich would break lines at 80 columns.
errors = Console(stderr=True, soft_wrap=True)


@contextmanager
def _database(settings: Settings) -> Iterator[Database]:
    """The upgraded database of demo, serve and db upgrade: created when it is not there."""
    with open_database(settings, create=True) as database:
        yield database


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDirOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Create or upgrade the database schema to the newest version."""
    settings = settings_for(data_dir, database_url)
    with _database(settings):
        pass
    console.print(f"[green]Schema is up to date[/] ({redact(settings.effective_database_url)}).")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Argument(help="The person's e-mail address, used to log in.")],
    role: Annotated[Role | None, typer.Option(help="A role to grant in --summit.")] = None,
    summit: Annotated[str | None, typer.Option(help="Slug of the summit for --role.")] = None,
    admin: Annotated[bool, typer.Option(help="Platform admin: may do everything.")] = False,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    password: Annotated[
        str | None,
        typer.Option(envvar="SUMMITCAST_NEW_PASSWORD", help="Asked for when not given."),
    ] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a user, optionally with a role in one summit."""
    from summitcast.services import accounts, programme

    if (role is None) != (summit is None):
        raise typer.BadParameter("--role and --summit go together.")
    settings = settings_for(data_dir, database_url)
    require_database(settings)  # no database here: say so before asking for a password
    secret = password or typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with open_database(settings, create=False) as database, database.session() as db:
        user = accounts.create_user(
            db, email=email, password=secret, display_name=name, is_admin=admin
        )
        if role is not None and summit is not None:
            accounts.grant_role(db, user=user, summit=programme.get_summit(db, summit), role=role)
    console.print(
        f"[green]Created[/] {user.email}" + (f" as {role.value} of {summit}" if role else "")
    )


@user_app.command("reset-second-factor")
def user_reset_second_factor(
    email: Annotated[str, typer.Argument(help="The e-mail address the person logs in with.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Remove a user's passkeys, authenticator app and recovery codes (all of them lost)."""
    from summitcast.services import second_factor

    settings = settings_for(data_dir, database_url)
    with open_database(settings, create=False) as database, database.session() as db:
        user, removed = second_factor.reset_second_factors(db, email)
    console.print(
        f"[green]Removed[/] {removed} second-factor record(s) of {user.email}; in production "
        "an organiser or producer sets up a new one at the next login."
    )


@programme_app.command("import")
def programme_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    summit: Annotated[str, typer.Option(help="Slug of the summit; created if it does not exist.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Import a frab/pretalx JSON or frab XML schedule into a summit (all or nothing)."""
    from summitcast.services import schedule

    settings = settings_for(data_dir, database_url)
    size = file.stat().st_size
    if size > settings.max_import_bytes:
        raise SummitcastError(
            f"{file} is {size / 1_048_576:.1f} MiB; at most "
            f"{settings.max_import_bytes // 1_048_576} MiB are accepted."
        )
    with (
        open_database(settings, create=False) as database,
        Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as bar,
    ):
        task = bar.add_task(f"Reading {file.name}", total=None)
        data = file.read_bytes()
        bar.update(task, description=f"Importing {file.name}")
        with database.session() as db:
            target, result = schedule.import_into_slug(
                db, summit, data, filename=file.name, max_bytes=settings.max_import_bytes
            )
            slug = target.slug
    table = Table(title=f"Imported into {slug}")
    for column in ("days", "sessions", "items", "speakers", "created", "updated", "unchanged"):
        table.add_column(column, justify="right")
    table.add_row(*[str(v) for v in result.as_dict().values()])
    console.print(table)


@programme_app.command("export")
def programme_export(
    summit: Annotated[str, typer.Option(help="Slug of the summit.")],
    format: Annotated[str, typer.Option("--format", help="json, xml or ics.")] = "json",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File; default stdout.")
    ] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Export the programme as frab JSON, frab XML or iCalendar."""
    from summitcast.services import programme, schedule

    if format not in ("json", "xml", "ics"):
        raise typer.BadParameter("--format must be json, xml or ics.")
    settings = settings_for(data_dir, database_url)
    with open_database(settings, create=False) as database, database.session() as db:
        body, _ = schedule.export_summit(db, programme.get_summit(db, summit), format)
    if output is None:
        sys.stdout.buffer.write(body)
    else:
        output.write_bytes(body)
        errors.print(f"Wrote {output} ({len(body)} bytes).")


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="SUMMITCAST_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SUMMITCAST_PORT")] = 8000,
    workers: Annotated[int, typer.Option(envvar="SUMMITCAST_WORKERS", min=1)] = 1,
    backlog: Annotated[int, typer.Option(envvar="SUMMITCAST_BACKLOG", min=64)] = 8192,
    gc_freeze: Annotated[
        bool, typer.Option(envvar="SUMMITCAST_GC_FREEZE", help="gc.freeze() after start-up.")
    ] = True,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Serve summitcast with uvicorn (settings from SUMMITCAST_* variables)."""
    import json
    import os

    # Workers read their Settings from the environment, so the choices travel there.
    os.environ["SUMMITCAST_GC_FREEZE"] = "true" if gc_freeze else "false"
    if data_dir is not None:
        os.environ["SUMMITCAST_DATA_DIR"] = str(data_dir)
    if database_url is not None:
        os.environ["SUMMITCAST_DATABASE_URL"] = database_url
    settings = Settings()
    if workers > 1 and not settings.redis_url:
        # In-process presence is per worker: each would count only its own sockets.
        errors.print(
            "[yellow]warning:[/] --workers > 1 without SUMMITCAST_REDIS_URL: "
            "each worker counts only its own locations."
        )
    with _database(settings):  # migrate once, before workers start racing to do it
        pass
    options = _uvicorn_options(host, port, workers, backlog)
    # Become a small uvicorn master (cli/serving.py): same process, so signals and the
    # pid a caller holds still reach the server.
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-m", "summitcast.cli.serving", json.dumps(options)]
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, no shell


def _uvicorn_options(host: str, port: int, workers: int, backlog: int) -> dict[str, object]:
    """uvicorn's settings for summitcast (each one says why it differs from uvicorn's)."""
    return {
        "host": host,
        "port": port,
        "workers": workers,
        # X-Forwarded-* are read by the app itself, from SUMMITCAST_TRUSTED_PROXIES only
        # (web/proxies.py), the same under any server; uvicorn's would apply a second time.
        "proxy_headers": False,
        "log_level": "info",
        "access_log": False,  # access logs would hold client addresses; we keep none
        # Deflate costs ~35 KiB per socket (59 vs 24 KiB, VERIFIED.md) for ~150-byte
        # heartbeats that barely compress: 30,000 screens would pay ~1 GiB for nothing.
        "ws_per_message_deflate": False,
        # No protocol pings: location screens prove they are alive with a heartbeat every
        # ~10 s and their socket closes after two silent timeouts (web/transport/); figure
        # streams write a keep-alive every 15 s. Pings would add a ping and a pong per
        # socket every 20 s: a third of all frames at 30,000 screens.
        "ws_ping_interval": None,
        # Location screens' sockets on a callback-only protocol (web/transport/presence_socket.py:
        # no per-message coroutine, so no multi-second garbage collections at 15,000
        # sockets); every other WebSocket is handed on to uvicorn's own.
        "ws": "summitcast.web.transport.presence_socket:PresenceWebSockets",
        # A thundering herd of screens reconnecting at once overflows the default 2048.
        "backlog": backlog,
        # The supervisor kills a worker that misses a 5 s health ping; a worker busy with
        # 15,000 sockets on a loaded 2-core machine missed it, and its screens all dropped.
        "timeout_worker_healthcheck": 30,
    }


def _demo_clip_maker() -> Callable[[Path, str | None, int | None], Path]:
    """Make (or reuse) the demo's clips with the bundled ffmpeg, 640x360 at 15 fps."""
    import imageio_ffmpeg

    from summitcast.media.testclips import Tone, make_clip
    from summitcast.services.demo import DEMO_CLIP_S

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()

    def make(path: Path, text: str | None, hz: int | None) -> Path:
        if path.exists():
            return path
        tones = (Tone(hz or 440),)
        partial = path.with_name(f".partial-{path.name}")
        make_clip(
            ffmpeg, partial, duration_s=DEMO_CLIP_S, width=640, height=360, fps=15,
            tones=tones, text=text,
        )  # fmt: skip
        partial.rename(path)  # only whole clips are cached
        return path

    return make


def _demo_settings(data_dir: Path | None, port: int) -> Settings:
    """The demo's Settings, its choices also in the environment for the server's workers."""
    import os

    from summitcast.cli.demo_ports import demo_listener_env

    # The folder every other command reads by default, so they see the demo (cli/data.py).
    data_dir = settings_for(data_dir).data_dir
    os.environ["SUMMITCAST_DATA_DIR"] = str(data_dir)
    # Two rungs keep the demo's live encode light on a laptop or a 2-core machine.
    os.environ.setdefault("SUMMITCAST_BROADCAST_LADDER", "small")
    # A few hundred simulated locations come and go on the live map (demo summits only).
    os.environ.setdefault("SUMMITCAST_DEMO_AUDIENCE", "true")
    # Ingest and green-room listeners on a free block derived from --port, so several
    # demos on one machine never fight over RTMP 1935 (unless ports are set explicitly).
    ingest_host = settings_for(data_dir).ingest_host
    os.environ.update(demo_listener_env(port, os.environ, host=ingest_host))
    return Settings(data_dir=data_dir)


def _print_demo_links(
    base: str,
    host: str,
    settings: Settings,
    made: DemoSummit,
    slug: str,
    session_id: int,
    audience: int,
) -> None:
    """Print where the demo's pages, ingest and logins are."""
    data_dir = settings.data_dir
    console.print(
        f"\n[bold]summitcast demo[/] — data in {data_dir.resolve()} (delete it to start over)"
    )
    console.print(f"  Watch (on air):    {base}/s/{slug}/watch")
    console.print(f"  Control room:      {base}/backstage/s/{slug}/sessions/{session_id}/control")
    console.print(f"  Public programme:  {base}/s/{slug}")
    console.print(f"  Live map:          {base}/s/{slug}/live ({audience} simulated locations)")
    console.print(f"  Attendance report: {base}/backstage/s/{slug}/report")
    console.print(f"  Attendance (public): {base}/s/{slug}/attendance")
    console.print(f"  Backstage:         {base}/backstage")
    console.print(f"  API (OpenAPI):     {base}/api/openapi.json")
    console.print(
        f"  Studio ingest:     rtmp://{host}:{settings.ingest_rtmp_port}/live and "
        f"srt://{host}:{settings.ingest_srt_port} (keys in the control room); "
        f"green room from port {settings.greenroom_rtmp_port}"
    )
    console.print(f"  Organiser login:   {made.organiser_email} / {made.password}")
    console.print(f"  Producer login:    {made.producer_email} / {made.password}\n")


@app.command()
def demo(
    host: Annotated[str, typer.Option(envvar="SUMMITCAST_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SUMMITCAST_PORT")] = 8000,
    data_dir: DataDirOption = None,
    no_serve: Annotated[bool, typer.Option(help="Create the demo data and exit.")] = False,
) -> None:
    """Create a fictional demo summit on the embedded defaults and serve it."""
    from summitcast.services.demo import (
        prepare_demo_broadcast,
        seed_demo,
        seed_demo_attendance,
        seed_demo_audience,
    )
    from summitcast.services.link_secrets import LinkSecrets

    settings = _demo_settings(data_dir, port)
    data_dir = settings.data_dir
    with (
        _database(settings) as database,
        Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as bar,
    ):
        bar.add_task("Creating the demo summit", total=None)
        with database.session() as db:
            made = seed_demo(db, start=datetime.now(UTC).date())
            slug = made.summit.slug
        bar.add_task("Preparing the first session's clips (cached after the first run)", total=None)
        with database.session() as db:
            made = seed_demo(db, start=datetime.now(UTC).date())
            session_id = prepare_demo_broadcast(
                db, made, data_dir / "demo-media", _demo_clip_maker()
            )
        bar.add_task("Simulating and publishing the demo's attendance", total=None)
        with database.session() as db:
            made = seed_demo(db, start=datetime.now(UTC).date())
            seed_demo_attendance(db, made, settings)
            audience = seed_demo_audience(db, made, LinkSecrets.of(settings))
    _print_demo_links(f"http://{host}:{port}", host, settings, made, slug, session_id, audience)
    if not no_serve:
        serve(host=host, port=port, workers=1)


EXIT_BAD_INPUT = 2  # a usage mistake, a missing or unreadable file, no database


def _fail(message: str, code: int) -> NoReturn:
    """Print one plain line on stderr and exit with code."""
    sys.stdout.flush()
    print("error: " + " ".join(message.split()), file=sys.stderr)  # one line, whatever it holds
    sys.exit(code)


def main() -> None:
    """Run the CLI: exit 0 only on success, else one line on stderr and a non-zero code."""
    try:
        # Not standalone: typer would draw its errors in boxes; they come here instead.
        code = app(standalone_mode=False)
    except SummitcastError as exc:
        _fail(exc.message, EXIT_BAD_INPUT)
    except typer.Abort:
        _fail("aborted", 1)
    except typer.TyperException as exc:  # click's usage errors, as typer ships click
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(EXIT_BAD_INPUT)  # the help was printed; nothing was done
        context = getattr(exc, "ctx", None)
        # A mistyped option or command: where to look; a bad value already says what is wrong.
        usage = context is not None and not isinstance(exc, typer.BadParameter)
        hint = f" (see: {context.command_path} --help)" if usage and context else ""
        _fail(exc.format_message() + hint, getattr(exc, "exit_code", EXIT_BAD_INPUT))
    # A command returns nothing, or the code of the typer.Exit it raised (verify: 1 = FAILED).
    sys.exit(code if isinstance(code, int) else 0)
