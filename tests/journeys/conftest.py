"""Journeys: one person's whole day against a real `summitcast serve` process and Chromium.

Each journey module starts its own server the way a user would: the installed
``summitcast demo --no-serve`` seeds a data folder, then ``summitcast serve`` runs
on it in a new process group; at the end of the module it is stopped and anything
left of it (ffmpeg included) is killed.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from summitcast.config import Settings
from summitcast.errors import ConfigurationError
from summitcast.services.demo import DEMO_ORGANISER, DEMO_PASSWORD, DEMO_PRODUCER, DEMO_SLUG
from tests.e2e.browser import require_chromium
from tests.e2e.conftest import free_port

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Response

# The console script pip installed next to this interpreter: what a user types.
SUMMITCAST = Path(sys.executable).parent / "summitcast"
REPO = Path(__file__).resolve().parents[2]
SLUG = DEMO_SLUG
ORGANISER = DEMO_ORGANISER
PRODUCER = DEMO_PRODUCER
PASSWORD = DEMO_PASSWORD
SIZES = ((1920, 1080), (1280, 720))

# Listener settings drawn per server, so two servers (or another helper's) never collide.
LISTENER_PORTS = {
    "ingest_rtmp_port": socket.SOCK_STREAM,
    "ingest_srt_port": socket.SOCK_DGRAM,
    "ingest_interpreter_rtmp_port": socket.SOCK_STREAM,
    "ingest_interpreter_srt_port": socket.SOCK_DGRAM,
    "greenroom_rtmp_port": socket.SOCK_STREAM,
    "greenroom_srt_port": socket.SOCK_DGRAM,
}


def screenshot_dir() -> Path:
    """Where journeys write their screenshots (SUMMITCAST_SCREENSHOT_DIR or var/…)."""
    chosen = os.environ.get("SUMMITCAST_SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else REPO / "var" / "screenshots" / "journeys"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _free(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ranges_free(settings: Settings) -> bool:
    for _name, (protocol, ports) in settings.port_ranges().items():
        kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
        for port in ports:
            with socket.socket(socket.AF_INET, kind) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    return False
    return True


def listener_env() -> dict[str, str]:
    """SUMMITCAST_* listener ports whose whole ranges are free now (drawn again on overlap)."""
    for _ in range(30):
        values = {name: _free(kind) for name, kind in LISTENER_PORTS.items()}
        try:
            settings = Settings(broadcast_max_sessions=2, greenroom_max_feeds=4, **values)  # type: ignore[arg-type]
        except ConfigurationError as error:
            if "overlap" not in str(error):
                raise
            continue
        if _ranges_free(settings):
            env = {f"SUMMITCAST_{name.upper()}": str(port) for name, port in values.items()}
            return env | {
                "SUMMITCAST_BROADCAST_MAX_SESSIONS": "2",
                "SUMMITCAST_GREENROOM_MAX_FEEDS": "4",
            }
    raise AssertionError("no free listener port ranges found")


@dataclass
class Server:
    """A running `summitcast serve` on the demo's data folder."""

    base_url: str
    data_dir: Path
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes]
    demo_output: str  # what `summitcast demo --no-serve` printed (its URLs and logins)

    def demo_url(self, label: str) -> str:
        """A path the demo printed after label (e.g. "Control room:")."""
        match = re.search(re.escape(label) + r"\s+https?://[^/\s]+(/\S*)", self.demo_output)
        assert match, self.demo_output
        return match.group(1)

    def url(self, path: str) -> str:
        """An absolute URL on this server."""
        return f"{self.base_url}{path}"

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the installed `summitcast` with this server's environment."""
        return subprocess.run(
            [str(SUMMITCAST), *args],
            env=self.env,
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def logged_in(self, email: str) -> Client:
        """An HTTP client logged in as email, with the CSRF token of its session."""
        client = httpx.Client(base_url=self.base_url, timeout=20)
        token = _csrf(client.get("/login").text)
        answer = client.post(
            "/login", data={"email": email, "password": PASSWORD, "csrf_token": token}
        )
        assert answer.status_code in (200, 303), answer.text
        return Client(client, _csrf(client.get("/backstage").text))

    def output(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(errors="replace")

    def diagnosis(self) -> str:
        """The end of the server's output and its HLS files, for a failure message."""
        files = sorted(str(p.relative_to(self.data_dir)) for p in self.data_dir.glob("hls/*/*/*"))
        tail = "\n".join(self.output().splitlines()[-30:])
        return f"server output (end):\n{tail}\nHLS files: {files[:40]}"


@dataclass
class Client:
    """A logged-in HTTP client (for set-up steps that are not the journey's person)."""

    http: httpx.Client
    csrf: str

    def post(self, path: str, **data: str) -> httpx.Response:
        """POST a form with the session's CSRF token."""
        return self.http.post(path, data={"csrf_token": self.csrf, **data})


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, html[:500]
    return match.group(1)


def server_env(data_dir: Path, port: int, **overrides: str) -> dict[str, str]:
    """The environment of one journey server: the demo's, plus free ports and a light encode."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SUMMITCAST_") or key == "SUMMITCAST_SCREENSHOT_DIR"
    }
    env |= {
        "PYTHONUNBUFFERED": "1",
        "SUMMITCAST_DATA_DIR": str(data_dir),
        "SUMMITCAST_SECRET_KEY": secrets.token_urlsafe(48),
        "SUMMITCAST_BASE_URL": f"http://127.0.0.1:{port}",
        "SUMMITCAST_PORT": str(port),
        # What `summitcast demo` sets for itself, and the lightest encode for 2 cores.
        "SUMMITCAST_BROADCAST_LADDER": "small",
        "SUMMITCAST_DEMO_AUDIENCE": "true",
        "SUMMITCAST_BROADCAST_FPS": "10",
        "SUMMITCAST_BROADCAST_PRESET": "ultrafast",
        "SUMMITCAST_BROADCAST_MIN_FREE_MB": "0",
    }
    return env | listener_env() | overrides


@contextmanager
def demo_server(data_dir: Path, **overrides: str) -> Iterator[Server]:
    """Seed the demo with the installed command, serve it on a free port, kill it afterwards."""
    require_chromium()
    port = free_port()
    env = server_env(data_dir, port, **overrides)
    seeded = subprocess.run(
        [str(SUMMITCAST), "demo", "--no-serve", "--data-dir", str(data_dir), "--port", str(port)],
        env=env,
        cwd=data_dir,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    log = data_dir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(SUMMITCAST), "serve", "--port", str(port)],
            env=env,
            cwd=data_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: ffmpeg children die with it
        )
    server = Server(f"http://127.0.0.1:{port}", data_dir, env, log, process, seeded.stdout)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, server.output()
            try:
                if httpx.get(server.url("/healthz"), timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"server did not start:\n{server.output()}"
            time.sleep(0.2)
        yield server
    finally:
        _stop(process, data_dir)


def _processes() -> dict[int, tuple[int, str]]:
    """Every live process: pid -> (parent pid, command line), read from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        if fields[0] != "Z":  # a zombie has already exited
            found[int(stat.parent.name)] = (int(fields[1]), cmdline)
    return found


def _descendants(pid: int) -> set[int]:
    table = _processes()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, (parent, _) in table.items() if parent in frontier}
        found |= frontier
    return found


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _stop(process: subprocess.Popen[bytes], data_dir: Path) -> None:
    """Stop the server gracefully, then kill whatever is left of it (ffmpeg included)."""
    # ffmpeg runs in sessions of its own (media/supervisor.py), so the server's process
    # group does not hold it: its children are found by parentage and by the data folder
    # their command lines name.
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    stopped_by_itself = process.poll() is not None
    _kill(_descendants(process.pid))
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # start_new_session: group id = leader's pid
    process.wait(timeout=10)
    left = {
        pid
        for pid, (_, cmdline) in _processes().items()
        if str(data_dir) in cmdline and "ffmpeg" in cmdline
    }
    _kill(left)
    # A server that stopped by itself must have stopped its encoders too.
    assert not (stopped_by_itself and left), f"ffmpeg left running after the server: {left}"


# Messages a deliberate network cut causes in Chromium's console: the page cannot
# reach the server, which is what the cut is for. Only tolerated inside the cut.
NETWORK_CUT = re.compile(
    r"ERR_INTERNET_DISCONNECTED|ERR_NETWORK_CHANGED|ERR_NETWORK_IO_SUSPENDED|"
    r"ERR_CONNECTION_REFUSED|ERR_NAME_NOT_RESOLVED|WebSocket connection to .* failed"
)


@dataclass
class Journey:
    """One person's walk: the console errors, page errors and failed loads it meets, and shots."""

    role: str
    origin: str
    problems: list[str] = field(default_factory=list)
    tolerated: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)
    _cuts: list[tuple[float, float]] = field(default_factory=list)
    _step: int = 0
    _last: str = "start"  # the newest step shot: where a problem showed up

    def watch(self, page: Page, name: str) -> Page:
        """Collect this page's console errors, uncaught errors and failed same-origin loads."""
        page.on("console", lambda msg: self._console(name, msg))
        page.on("pageerror", lambda err: self._note(f"[{name}] pageerror: {err}"))
        page.on("response", lambda response: self._response(name, response))
        return page

    def _console(self, name: str, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self._note(f"[{name}] console: {msg.text} ({msg.location.get('url', '')})")

    def _response(self, name: str, response: Response) -> None:
        if response.status >= 400 and response.url.startswith(self.origin):
            self._note(f"[{name}] HTTP {response.status} {response.request.method} {response.url}")

    def _note(self, text: str) -> None:
        text = f"{text} (after step '{self._last}')"
        now = time.monotonic()
        in_cut = any(start <= now <= end for start, end in self._cuts)
        if in_cut and NETWORK_CUT.search(text):
            self.tolerated.append(text)
        else:
            self.problems.append(text)

    @contextmanager
    def network_cut(
        self, context: BrowserContext, seconds: float, grace_s: float = 5
    ) -> Iterator[None]:
        """Take the context offline for seconds, running the body meanwhile."""
        # Network errors the cut causes are expected until grace_s after it ends.
        start = time.monotonic()
        self._cuts.append((start, float("inf")))  # open-ended while offline
        context.set_offline(True)
        try:
            yield
            # The issue asks for a real 20 s cut: nothing to wait *for* but the clock.
            time.sleep(max(0.0, seconds - (time.monotonic() - start)))
        finally:
            context.set_offline(False)
            self._cuts[-1] = (start, time.monotonic() + grace_s)

    def shot(self, page: Page, step: str, *, full_page: bool = False) -> Path:
        """Write a screenshot of this step: <role>-<nn>-<step>.png."""
        self._step += 1
        self._last = step
        path = screenshot_dir() / f"{self.role}-{self._step:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=full_page)
        self.shots.append(path)
        return path

    def shots_at_sizes(
        self, page: Page, what: str, check: Callable[[Page], None] | None = None
    ) -> list[Path]:
        """Screenshots at 1920x1080 and 1280x720 (<what>-<w>x<h>.png), check(page) at each."""
        made = []
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            # Let the layout settle at the new size (two frames), not a fixed sleep.
            page.evaluate(
                "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
            )
            if check is not None:
                check(page)
            path = screenshot_dir() / f"{what}-{width}x{height}.png"
            page.screenshot(path=str(path))
            self.shots.append(path)
            made.append(path)
        return made

    def assert_clean(self) -> None:
        """No console error, page error or failed same-origin load on the whole walk."""
        assert self.problems == [], "\n".join(self.problems)


def log_in(page: Page, server: Server, email: str) -> None:
    """Log in through the login form, as a person does."""
    page.goto(server.url("/login"))
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url, timeout=10_000)
