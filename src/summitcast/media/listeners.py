"""A listener pair: one RTMP listener (behind the key gate) and one SRT listener, for one sender.

A studio's ingest (``summitcast.media.ingest``) and a live speaker's green-room feed
(``summitcast.runtime.greenroom``) both accept a stream this way; only what their
ffmpeg does with it differs, so each hands in its own argv and the pair runs them.

Keys never appear in a child's argv: ``/proc/<pid>/cmdline`` is readable by every
user of the machine, and ffmpeg repeats its input URL in error messages. The RTMP
listener sits behind the gate (``summitcast.media.rtmp_gate``), so its URL carries
no key. The SRT listener reads its URL and passphrase from a private ffconcat script
(``SecretScript``): this ffmpeg's ``-/option file`` syntax covers only ffmpeg's own
options, not the protocol's ``passphrase`` (measured: "Unrecognized option
'/passphrase'"), while the concat demuxer's ``option`` lines are handed to the
protocol as it opens. SRT checks its passphrase in the handshake itself (libsrt).

Each listener relays what it receives to MPEG-TS over UDP on loopback; the playout's
live feeder reads that relay only while it is wanted, so an idle relay costs nothing
and a dropped sender simply stops the packets.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from summitcast.media.playout import FeedSource
from summitcast.media.rtmp_gate import RtmpGate
from summitcast.media.supervisor import Supervisor

LIVE_FRESH_S = 2.0  # a listener counts as receiving if it reported progress this recently
# A listener only relays to a loopback UDP port (and writes throw-away previews): nothing
# to flush, so SIGKILL follows SIGTERM soon (an SRT listener took ~1.1 s to act on SIGTERM).
LISTENER_STOP_TIMEOUT_S = 0.5


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nobody uses right now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ListenerPorts:
    """Where one pair listens (public) and relays (loopback)."""

    rtmp: int
    srt: int
    rtmp_upstream: int
    rtmp_relay: int
    srt_relay: int


def _ffconcat_quote(value: str) -> str:
    """Quote a value for an ffconcat line (av_get_token rules: single quotes, \\' inside)."""
    return "'" + value.replace("'", "'\\''") + "'"


def srt_listener_script(host: str, port: int, key: str) -> str:
    """The ffconcat script of an SRT listener: its URL and, as protocol options, its passphrase."""
    # listener mode; latency is in microseconds (120 ms).
    url = f"srt://{host}:{port}?mode=listener&latency=120000"
    return "".join(
        [
            "ffconcat version 1.0\n",
            f"file {_ffconcat_quote(url)}\n",
            # The passphrase encrypts the stream and refuses callers without it.
            f"option passphrase {_ffconcat_quote(key)}\n",
            "option pbkeylen 16\n",  # AES-128, what the URLs shown to studios ask for
            # Faster start: without these the first segment is ~5 s late (VERIFIED.md).
            "option probesize 200000\n",
            "option analyzeduration 500000\n",
        ]
    )


def srt_script_input(script: Path) -> list[str]:
    """The input half of an SRT listener whose URL and passphrase are in ``script``."""
    return [
        # The concat demuxer probes too, on top of the SRT input it opens: keep it as short.
        "-probesize",
        "200000",
        "-analyzeduration",
        "500000",
        "-f",
        "concat",  # read the input's URL and options from the script, not from argv
        "-safe",
        "0",  # the script names a URL, which concat's "safe" mode refuses
        "-protocol_whitelist",
        "file,srt",  # the script itself, and the one protocol it may open
        "-i",
        str(script),
    ]


class SecretScript:
    """A file only this user can read, holding a secret for a child process; gone after close()."""

    def __init__(self, name: str, text: str) -> None:
        # mkdtemp makes a 0700 folder; the file inside is created 0600 and never replaced.
        self.folder = Path(tempfile.mkdtemp(prefix="summitcast-secret-"))
        self.path = self.folder / name
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)

    def close(self) -> None:
        """Remove the file and its folder."""
        shutil.rmtree(self.folder, ignore_errors=True)


def relay_url(port: int) -> str:
    """How a feeder reads a listener's loopback relay."""
    # timeout (µs): the reader ends 2 s after the sender stops;
    # fifo_size/overrun_nonfatal: a slow moment drops packets instead of failing.
    return f"udp://127.0.0.1:{port}?timeout=2000000&fifo_size=1000000&overrun_nonfatal=1"


class ListenerPair:
    """An RTMP listener behind the key gate and an SRT listener, each relaying to its own port.

    rtmp_argv: the ffmpeg listening on ``ports.rtmp_upstream`` (behind the gate);
    srt_argv: the ffmpeg listening as the script at the given path says (its key inside);
    check_key: whether a stream key named in an RTMP publish is this pair's ``key``.
    """

    def __init__(
        self,
        host: str,
        ports: ListenerPorts,
        key: str,
        *,
        check_key: Callable[[str], bool],
        rtmp_argv: list[str],
        srt_argv: Callable[[Path], list[str]],
        name: str,
    ) -> None:
        self.host = host
        self.ports = ports
        self._key = key
        self.gate = RtmpGate(host, ports.rtmp, ports.rtmp_upstream, check_key)
        self.rtmp = Supervisor(
            rtmp_argv,
            name=f"{name}-rtmp",
            max_backoff_s=5.0,
            stop_timeout_s=LISTENER_STOP_TIMEOUT_S,
        )
        # Kept until stop(): the supervisor's restarts read it again.
        self._srt_script = SecretScript("srt.ffconcat", srt_listener_script(host, ports.srt, key))
        self.srt = Supervisor(
            srt_argv(self._srt_script.path),
            name=f"{name}-srt",
            max_backoff_s=5.0,
            stop_timeout_s=LISTENER_STOP_TIMEOUT_S,
        )

    @property
    def key(self) -> str:
        """The key this pair accepts."""
        return self._key

    async def start(self) -> None:
        """Open both listeners."""
        await self.rtmp.start()
        await self.srt.start()
        await self.gate.start()

    async def stop(self) -> None:
        """Close both listeners, at once."""
        await asyncio.gather(self.gate.stop(), self.rtmp.stop(), self.srt.stop())
        self._srt_script.close()

    def _receiving(self, supervisor: Supervisor) -> bool:
        health = supervisor.health
        fresh = time.monotonic() - health.updated_at < LIVE_FRESH_S
        return health.running and fresh and health.out_time_s > 0

    def receiving(self) -> str | None:
        """ "rtmp" or "srt" when someone is sending right now, else None."""
        if self._receiving(self.rtmp):
            return "rtmp"
        if self._receiving(self.srt):
            return "srt"
        return None

    def relay_url(self) -> str | None:
        """The loopback relay of the protocol that is receiving right now, if any."""
        protocol = self.receiving()
        if protocol is None:
            return None
        return relay_url(self.ports.rtmp_relay if protocol == "rtmp" else self.ports.srt_relay)

    def live_source(self) -> FeedSource | None:
        """A feeder source reading the relay of the sender, if anyone is sending."""
        url = self.relay_url()
        if url is None:
            return None
        return FeedSource(
            url,  # when the sender stops, the feeder ends 2 s later and the slate returns
            input_options=("-probesize", "500000", "-analyzeduration", "1000000"),
            audio_tracks=1,
            live=True,
        )

    def bitrate_kbps(self) -> float | None:
        """The input bitrate of the sender, from ffmpeg's progress."""
        protocol = self.receiving()
        if protocol is None:
            return None
        health = (self.rtmp if protocol == "rtmp" else self.srt).health
        return health.bitrate_kbps
