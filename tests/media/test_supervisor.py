"""The supervisor with the real ffmpeg: restarts, backoff, health, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import imageio_ffmpeg
import pytest

from summitcast.media.supervisor import EncoderHealth, Supervisor, apply_progress, backoff_delay

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
# A tiny endless encode at real-time speed, reporting progress twice a second.
ENDLESS = [
    *[FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error"],
    *["-progress", "pipe:1", "-stats_period", "0.5"],
    *["-re", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10"],
    *["-c:v", "libx264", "-preset", "ultrafast", "-f", "null", "-"],
]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _until(condition: object, timeout_s: float) -> float:
    """Wait until condition() is true; return the seconds it took."""
    began = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - began > timeout_s:
            raise TimeoutError
        await asyncio.sleep(0.02)
    return time.monotonic() - began


def test_backoff_delay_doubles_then_caps() -> None:
    delays = [backoff_delay(n, first_s=0.25, cap_s=4.0) for n in range(7)]
    assert delays == [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 4.0]


def test_apply_progress_reads_block() -> None:
    health = EncoderHealth()
    block = {"frame": "42", "fps": "9.98", "drop_frames": "1", "dup_frames": "0"}
    block |= {"out_time_us": "4200000", "speed": "1.01x", "progress": "continue"}
    apply_progress(health, block)
    assert (health.frame, health.fps, health.drop_frames, health.out_time_s, health.speed) == (
        42,
        9.98,
        1,
        4.2,
        1.01,
    )


def test_apply_progress_skips_not_available_values() -> None:
    health = EncoderHealth(speed=2.0)
    apply_progress(health, {"speed": "N/A", "out_time_us": "N/A", "frame": "0"})
    assert (health.speed, health.out_time_s, health.frame) == (2.0, 0.0, 0)


def test_supervisor_kill_9_restarts_within_2_s() -> None:
    async def scenario() -> tuple[float, int, int, int]:
        sup = Supervisor(ENDLESS, first_backoff_s=0.25)
        await sup.start()
        await _until(lambda: sup.health.frame > 0, 10)
        first_pid = sup.health.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        took = await _until(lambda: sup.health.running and sup.health.pid != first_pid, 2)
        restarts, exit_code = sup.health.restarts, sup.health.last_exit_code
        await sup.stop()
        return took, restarts, exit_code or 0, first_pid

    took, restarts, exit_code, _pid = asyncio.run(scenario())
    assert took < 2.0
    assert (restarts, exit_code) == (1, -signal.SIGKILL)


def test_supervisor_bad_argv_backs_off_and_keeps_last_error() -> None:
    async def scenario() -> tuple[int, str | None, bool]:
        argv = [FFMPEG, "-hide_banner", "-nostdin", "-i", "/nonexistent/in.mp4", "-f", "null", "-"]
        sup = Supervisor(argv, first_backoff_s=0.1, max_backoff_s=0.4)
        await sup.start()
        # Delays 0.1 + 0.2 + 0.4 + 0.4…: in 1.5 s at most ~4 restarts, never a tight loop.
        await asyncio.sleep(1.5)
        restarts, error = sup.health.restarts, sup.health.last_error
        await sup.stop()
        return restarts, error, sup.health.running

    restarts, error, running = asyncio.run(scenario())
    assert 2 <= restarts <= 5
    assert error is not None
    assert error.startswith("exit code ")
    assert "No such file or directory" in error
    assert running is False


def test_supervisor_missing_executable_reports_error() -> None:
    async def scenario() -> str | None:
        sup = Supervisor(["/nonexistent/ffmpeg"], first_backoff_s=0.05)
        await sup.start()
        await asyncio.sleep(0.1)
        await sup.stop()
        return sup.health.last_error

    error = asyncio.run(scenario())
    assert error is not None
    assert error.startswith("could not start /nonexistent/ffmpeg:")


def test_supervisor_stop_leaves_no_child() -> None:
    async def scenario() -> tuple[int, bool]:
        sup = Supervisor(ENDLESS)
        await sup.start()
        await _until(lambda: sup.health.frame > 0, 10)
        pid = sup.health.pid
        assert pid is not None
        await sup.stop()
        return pid, sup.health.running

    pid, running = asyncio.run(scenario())
    assert (_alive(pid), running) == (False, False)


def test_supervisor_stop_kills_process_ignoring_sigterm() -> None:
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)",
    ]

    async def scenario() -> tuple[int, float, int | None]:
        sup = Supervisor(stubborn, stop_timeout_s=0.3)
        await sup.start()
        await asyncio.sleep(0.3)  # let Python install its handler
        pid = sup.health.pid
        assert pid is not None
        began = time.monotonic()
        await sup.stop()
        return pid, time.monotonic() - began, sup.health.last_exit_code

    pid, took, exit_code = asyncio.run(scenario())
    assert (_alive(pid), exit_code) == (False, -signal.SIGKILL)
    assert took < 2.0


def test_supervisor_no_restart_after_success_when_asked() -> None:
    argv = [sys.executable, "-c", "print('progress=end')"]

    async def scenario() -> tuple[int, int | None]:
        sup = Supervisor(argv, restart_on_success=False)
        await sup.start()
        await asyncio.wait_for(sup.finished.wait(), 5)
        await sup.stop()
        return sup.health.restarts, sup.health.last_exit_code

    assert asyncio.run(scenario()) == (0, 0)


@pytest.mark.parametrize("stdin_pipe", [True, False])
def test_supervisor_stop_before_start_is_noop(stdin_pipe: bool) -> None:
    sup = Supervisor(ENDLESS, stdin_pipe=stdin_pipe)
    asyncio.run(sup.stop())
    assert sup.health.running is False


def test_supervisor_child_has_its_own_session_so_ctrl_c_misses_it() -> None:
    async def scenario() -> tuple[int, int]:
        sup = Supervisor(ENDLESS)
        await sup.start()
        pid = sup.health.pid
        assert pid is not None
        groups = os.getpgid(pid), os.getsid(pid)
        await sup.stop()
        return groups

    group, session = asyncio.run(scenario())
    # A terminal's Ctrl-C goes to its foreground group: ours, never the child's.
    assert group != os.getpgid(0)
    assert session != os.getsid(0)


def test_supervisor_stop_with_flush_never_restarts_a_process_failing_on_eof() -> None:
    # An encoder that dies as its feed closes (a signal, say) used to be restarted and then
    # waited for, stdin open, for 15 s of a shutdown.
    fails_on_eof = [sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit(3)"]

    async def scenario() -> tuple[float, int, int | None]:
        sup = Supervisor(fails_on_eof, stdin_pipe=True, restart_on_success=False)
        await sup.start()
        began = time.monotonic()
        await sup.stop(flush_s=5.0)
        return time.monotonic() - began, sup.health.restarts, sup.health.last_exit_code

    took, restarts, exit_code = asyncio.run(scenario())
    assert (restarts, exit_code) == (0, 3)
    assert took < 2.0


def test_supervisor_stop_with_flush_lets_the_process_finish_by_itself() -> None:
    finishes_on_eof = [
        sys.executable,
        "-c",
        "import signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); sys.stdin.read()",
    ]

    async def scenario() -> int | None:
        sup = Supervisor(finishes_on_eof, stdin_pipe=True, stop_timeout_s=0.2)
        await sup.start()
        await sup.stop(flush_s=5.0)
        return sup.health.last_exit_code

    # Exit code 0, not -SIGKILL: it ended on EOF, within the flush time, never signalled.
    assert asyncio.run(scenario()) == 0


def test_supervisor_start_raises_when_its_loop_cannot_spawn() -> None:
    async def scenario() -> None:
        sup = Supervisor([FFMPEG, "bad\0argument"])
        await asyncio.wait_for(sup.start(), 5)  # once hung for ever: _started was never set

    with pytest.raises(ValueError, match="null"):
        asyncio.run(scenario())
