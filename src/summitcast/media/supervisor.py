"""Keep one ffmpeg (or any argv) running: start it, watch its progress, restart it with backoff.

ffmpeg stops for reasons outside summitcast's control: an RTMP publisher leaves
(the listener then exits, see VERIFIED.md), a pipe breaks, a disk fills. A live
broadcast must come back by itself, quickly the first time and without hammering
the machine when the cause persists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

STDERR_LINES_KEPT = 20
# After SIGTERM a process gets this long before SIGKILL: ffmpeg closes its outputs in well
# under a second; a longer wait only delays a shutdown (it was 5 s per listener, in a row).
STOP_TIMEOUT_S = 2.0


@dataclass
class EncoderHealth:
    """What the supervisor knows about its process, updated about once a second."""

    running: bool = False
    pid: int | None = None
    speed: float | None = None  # × real time; below 1.0 a live encoder falls behind
    frame: int = 0
    fps: float = 0.0
    drop_frames: int = 0
    dup_frames: int = 0
    out_time_s: float = 0.0
    bitrate_kbps: float | None = None  # output bitrate; for a remuxing ingest, the input's
    restarts: int = 0
    last_exit_code: int | None = None
    last_error: str | None = None
    updated_at: float = 0.0  # time.monotonic() of the last progress block
    recent_stderr: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_LINES_KEPT))


def backoff_delay(failures: int, *, first_s: float = 0.25, cap_s: float = 10.0) -> float:
    """Seconds to wait before restart number failures (1-based): doubling, capped."""
    if failures < 1:
        return 0.0
    return float(min(cap_s, first_s * 2 ** (failures - 1)))


def apply_progress(health: EncoderHealth, block: dict[str, str]) -> None:
    """Copy one `-progress` key=value block into health; unknown or N/A values are skipped."""

    # ffmpeg writes "N/A" before the first frame and "speed=1.02x" with a suffix.
    def number(key: str) -> float | None:
        raw = block.get(key, "N/A").strip().removesuffix("x")
        try:
            return float(raw)
        except ValueError:
            return None

    if (frame := number("frame")) is not None:
        health.frame = int(frame)
    if (fps := number("fps")) is not None:
        health.fps = fps
    if (drops := number("drop_frames")) is not None:
        health.drop_frames = int(drops)
    if (dups := number("dup_frames")) is not None:
        health.dup_frames = int(dups)
    if (speed := number("speed")) is not None:
        health.speed = speed
    # out_time_us is microseconds despite out_time_ms's name (ffmpeg quirk): use _us.
    if (out_us := number("out_time_us")) is not None:
        health.out_time_s = out_us / 1_000_000
    bitrate = block.get("bitrate", "N/A").strip().removesuffix("kbits/s")
    with contextlib.suppress(ValueError):
        health.bitrate_kbps = float(bitrate)
    health.updated_at = time.monotonic()


class Supervisor:
    """Runs one argv (never through a shell) and restarts it until stop() is called."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str = "ffmpeg",
        first_backoff_s: float = 0.25,
        max_backoff_s: float = 10.0,
        stable_after_s: float = 10.0,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        stdin_pipe: bool = False,
        restart_on_success: bool = True,
        restart_argv: Sequence[str] | None = None,
    ) -> None:
        self.argv = list(argv)
        # A restart may need different flags (ffmpeg's HLS append_list, say).
        self.restart_argv = list(restart_argv) if restart_argv is not None else self.argv
        self.name = name
        self.health = EncoderHealth()
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        # A run this long resets the backoff: the next failure is a new incident.
        self.stable_after_s = stable_after_s
        self.stop_timeout_s = stop_timeout_s
        self.stdin_pipe = stdin_pipe
        # A live encoder never finishes on purpose; a file job that exits 0 is done.
        self.restart_on_success = restart_on_success
        self.process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._started = asyncio.Event()
        self._wake = asyncio.Event()  # set by stop() to cut a backoff sleep short
        self.finished = asyncio.Event()

    async def start(self) -> None:
        """Start the process and the loop that keeps it running; return once it is spawned."""
        if self._task is not None:
            raise RuntimeError(f"{self.name} supervisor already started")
        self._task = asyncio.create_task(self._run(), name=f"supervise-{self.name}")
        await self._started.wait()
        if self._task.done():
            self._task.result()  # the loop itself crashed (not the process): say so here

    async def wait_started(self, generation: int, timeout_s: float) -> None:
        """Wait until the process has been started generation+1 times (restarts >= generation)."""
        deadline = time.monotonic() + timeout_s
        while not (self.health.restarts >= generation and self.health.running):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not (re)start within {timeout_s} s")
            await asyncio.sleep(0.02)

    async def write_stdin(self, chunk: bytes, *, attempts: int = 3) -> bool:
        """Write to the running process's stdin; after a crash, wait for its replacement.

        Returns False (and drops the chunk) when the process keeps failing.
        """
        for _attempt in range(attempts):
            proc = self.process
            if proc is not None and proc.stdin is not None and proc.returncode is None:
                try:
                    proc.stdin.write(chunk)
                    await proc.stdin.drain()  # back-pressure: never buffer more than the pipe
                    return True
                except (BrokenPipeError, ConnectionResetError):
                    logger.warning("%s went away; waiting for its restart", self.name)
            with contextlib.suppress(TimeoutError):
                await self.wait_started(self.health.restarts + 1, timeout_s=15)
        logger.error("%s: dropping %d bytes, the process keeps failing", self.name, len(chunk))
        return False

    async def stop(self, *, flush_s: float = 0.0) -> None:
        """Stop restarting, then end the process: stdin EOF, SIGTERM, then SIGKILL.

        flush_s: how long the process may take to finish by itself after EOF (an
        encoder closing its playlists) before it is sent SIGTERM.
        """
        self._stopping = True  # first: whatever ends the process now, it is not restarted
        self._wake.set()
        if self._task is None:
            return
        await self._terminate(flush_s)
        # The loop sees _stopping after the process ends or the backoff is cut short;
        # no cancellation, so a process being spawned right now is still ended by it.
        await self._task

    async def _terminate(self, flush_s: float = 0.0) -> None:
        """End the current process politely, then firmly."""
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()  # EOF lets ffmpeg finish the segment and playlist it is writing
        if flush_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), flush_s)
            if proc.returncode is not None:
                return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.stop_timeout_s)
        except TimeoutError:
            logger.warning("%s ignored SIGTERM for %s s; killing", self.name, self.stop_timeout_s)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def _run(self) -> None:
        """Start, watch, and restart the process until stopping."""
        failures = 0
        try:
            while not self._stopping:
                began = time.monotonic()
                try:
                    exit_code = await self._run_once()
                except OSError as exc:  # the executable is missing or not runnable
                    exit_code = None
                    self.health.last_error = f"could not start {self.argv[0]}: {exc}"
                    self._started.set()
                if self._stopping:
                    break
                if exit_code == 0 and not self.restart_on_success:
                    break
                if exit_code is not None:
                    tail = " | ".join(self.health.recent_stderr)
                    self.health.last_error = f"exit code {exit_code}" + (
                        f": {tail}" if tail else ""
                    )
                failures = 1 if time.monotonic() - began >= self.stable_after_s else failures + 1
                delay = backoff_delay(
                    failures, first_s=self.first_backoff_s, cap_s=self.max_backoff_s
                )
                logger.warning(
                    "%s stopped (%s); restart %d in %.2f s",
                    self.name,
                    self.health.last_error,
                    self.health.restarts + 1,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                if self._stopping:
                    break
                self.health.restarts += 1
        finally:
            # Cancelled or crashed: never leave the child behind, nor start() waiting.
            await self._terminate()
            self.health.running = False
            self._started.set()
            self.finished.set()

    async def _run_once(self) -> int:
        """Run the process once, feeding its output into health; return its exit code."""
        argv = self.restart_argv if self.health.restarts else self.argv
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if self.stdin_pipe else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own session and process group: Ctrl-C in a terminal signals the whole
            # foreground group, and ffmpeg would die at once and be restarted while the
            # server still drains its connections; the app's shutdown stops it, in order.
            # Not process_group=0: uvloop (under `summitcast serve`) refuses that argument.
            start_new_session=True,
        )
        self.health.running = True
        self.health.pid = self.process.pid
        self.health.recent_stderr.clear()
        self._started.set()
        if self._stopping:  # stop() ran while we were spawning
            await self._terminate()
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        try:
            await asyncio.gather(
                self._read_progress(self.process.stdout), self._read_stderr(self.process.stderr)
            )
            return await self.process.wait()
        finally:
            self.health.running = False
            self.health.last_exit_code = self.process.returncode

    async def _read_progress(self, stdout: asyncio.StreamReader) -> None:
        """Parse `-progress pipe:1` blocks (key=value lines ending in progress=…)."""
        block: dict[str, str] = {}
        async for raw in stdout:
            key, sep, value = raw.decode("utf-8", "replace").strip().partition("=")
            if not sep:
                continue
            block[key] = value
            if key == "progress":
                apply_progress(self.health, block)
                block = {}

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        """Keep the last lines of stderr: ffmpeg's explanation of why it stopped."""
        async for raw in stderr:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self.health.recent_stderr.append(line)
