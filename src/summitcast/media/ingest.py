"""Live ingest: a studio's RTMP or SRT stream, checked against the session's key, relayed locally.

ffmpeg's RTMP listener accepts any stream key (measured: a wrong key only logs
"App field don't match up"), so RTMP arrives at ``RtmpGate`` first: a TCP relay
that reads the client's RTMP chunk stream as it passes, and closes the
connection before any media flows unless the ``publish`` command names the
session's key. SRT checks its passphrase in the handshake itself (libsrt).

Keys never appear in a child's argv: ``/proc/<pid>/cmdline`` is readable by every
user of the machine, and ffmpeg repeats its input URL in error messages. The RTMP
listener sits behind the gate, so its URL carries no key. The SRT listener reads
its URL and passphrase from a private ffconcat script (``SecretScript``): this
ffmpeg's ``-/option file`` syntax covers only ffmpeg's own options, not the
protocol's ``passphrase`` (measured: "Unrecognized option '/passphrase'"), while
the concat demuxer's ``option`` lines are handed to the protocol as it opens.

Each listener remuxes what it receives (no re-encode) to MPEG-TS over UDP on
loopback; the playout's live feeder reads that relay only while the session
is cut to live, so an idle relay costs nothing and a dropped studio simply
stops the packets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from summitcast.domain.broadcast import ingest_key_matches
from summitcast.media.playout import FeedSource
from summitcast.media.supervisor import Supervisor

logger = logging.getLogger(__name__)

HANDSHAKE_BYTES = 1 + 1536 + 1536  # C0 + C1 + C2 from the client, before any chunk
MAX_COMMAND_BYTES = 64 * 1024  # a publish command is tiny; anything bigger is hostile
LIVE_FRESH_S = 2.0  # an ingest counts as receiving if it reported progress this recently
UPSTREAM_WAIT_S = 12.0  # longer than the listener's longest restart backoff (5 s)
# A listener only relays to a loopback UDP port: nothing to flush, so SIGKILL follows
# SIGTERM soon (an SRT listener took ~1.1 s to act on SIGTERM).
LISTENER_STOP_TIMEOUT_S = 0.5


class RtmpRefusedError(Exception):
    """The client sent something the gate will not pass on."""


class RtmpSniffer:
    """Reads a client→server RTMP byte stream and decides whether its publish key is right."""

    def __init__(self, check_key: Callable[[str], bool]) -> None:
        self.check_key = check_key
        self.accepted = False
        self._buffer = bytearray()
        self._seen = 0  # client bytes after the handshake, accepted or not
        self._handshake_left = HANDSHAKE_BYTES
        self._chunk_size = 128  # RTMP's initial chunk size
        # Per chunk stream: [timestamp field, length, type id, bytes so far, extended ts?]
        self._streams: dict[int, list[int]] = {}
        self._messages: dict[int, bytearray] = {}

    def feed(self, data: bytes) -> None:
        """Consume client bytes; raise RtmpRefusedError at the first wrong key or early media."""
        if self.accepted:
            return
        if self._handshake_left:
            take = min(self._handshake_left, len(data))
            self._handshake_left -= take
            data = data[take:]
        # Count every byte, not just the unparsed ones: a client can keep the buffer
        # empty with endless empty messages, or grow one message per chunk stream.
        self._seen += len(data)
        if self._seen > MAX_COMMAND_BYTES:
            raise RtmpRefusedError("too much data before publish")
        self._buffer += data
        while not self.accepted and self._chunk():
            pass

    def _chunk(self) -> bool:
        """Parse one chunk from the buffer; False when it is not complete yet."""
        buf = self._buffer
        if not buf:
            return False
        fmt, csid, at = buf[0] >> 6, buf[0] & 0x3F, 1
        if csid == 0:
            if len(buf) < 2:
                return False
            csid, at = 64 + buf[1], 2
        elif csid == 1:
            if len(buf) < 3:
                return False
            csid, at = 64 + buf[1] + buf[2] * 256, 3
        header = (11, 7, 3, 0)[fmt]
        if len(buf) < at + header:
            return False
        state = self._streams.get(csid)
        if state is None:
            if fmt != 0:
                raise RtmpRefusedError("chunk stream starts without a full header")
            state = [0, 0, 0, 0, 0]
            self._streams[csid] = state
        if fmt <= 2:
            ts = int.from_bytes(buf[at : at + 3], "big")
            state[4] = int(ts == 0xFFFFFF)
        if fmt <= 1:
            state[1] = int.from_bytes(buf[at + 3 : at + 6], "big")
            state[2] = buf[at + 6]
        at += header
        if state[4]:
            at += 4  # extended timestamp (also repeated on type-3 chunks, as ffmpeg reads it)
            if len(buf) < at:
                return False
        message = self._messages.setdefault(csid, bytearray())
        take = min(self._chunk_size, state[1] - len(message))
        if len(buf) < at + take:
            return False
        message += buf[at : at + take]
        del buf[: at + take]
        if len(message) >= state[1]:
            self._message(state[2], bytes(message))
            self._messages[csid] = bytearray()
        return True

    def _message(self, type_id: int, payload: bytes) -> None:
        """Act on one complete client message."""
        if type_id == 1 and len(payload) >= 4:  # Set Chunk Size
            self._chunk_size = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            if not 1 <= self._chunk_size <= 0xFFFFFF:
                raise RtmpRefusedError("bad chunk size")
        elif type_id in (8, 9, 18, 15, 22):  # audio, video, data: media before publish
            raise RtmpRefusedError("media before an accepted publish")
        elif type_id in (17, 20):  # AMF3 / AMF0 command
            values = _amf0_values(payload[1:] if type_id == 17 else payload, 4)
            if values and values[0] == "publish":
                name = values[3] if len(values) > 3 and isinstance(values[3], str) else ""
                if not self.check_key(name.split("?", 1)[0]):
                    raise RtmpRefusedError("wrong stream key")
                self.accepted = True


def _amf0_values(data: bytes, limit: int) -> list[object]:
    """Read up to limit AMF0 values (strings, numbers, null; objects skipped)."""
    values: list[object] = []
    at = 0
    while at < len(data) and len(values) < limit:
        marker = data[at]
        at += 1
        if marker == 0x02:  # string
            size = int.from_bytes(data[at : at + 2], "big")
            values.append(data[at + 2 : at + 2 + size].decode("utf-8", "replace"))
            at += 2 + size
        elif marker == 0x00:  # number
            values.append(struct.unpack(">d", data[at : at + 8])[0])
            at += 8
        elif marker in (0x05, 0x06):  # null, undefined
            values.append(None)
        elif marker == 0x01:  # boolean
            values.append(bool(data[at]))
            at += 1
        elif marker == 0x03:  # object: skip properties up to the 00 00 09 end marker
            end = data.find(b"\x00\x00\x09", at)
            if end < 0:
                break
            values.append({})
            at = end + 3
        else:
            break
    return values


class RtmpGate:
    """A TCP relay in front of ffmpeg's RTMP listener that refuses wrong stream keys."""

    def __init__(
        self, host: str, port: int, upstream_port: int, check_key: Callable[[str], bool]
    ) -> None:
        self.host = host
        self.port = port
        self.upstream_port = upstream_port
        self.check_key = check_key
        self.refused = 0
        self.busy = False
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen for studios."""
        self._server = await asyncio.start_server(self._client, self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and drop connections."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _connect_upstream(
        self,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Reach ffmpeg's listener, which may be restarting after the last publisher left."""
        deadline = time.monotonic() + UPSTREAM_WAIT_S
        while True:
            try:
                return await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                if time.monotonic() > deadline:
                    return None
                await asyncio.sleep(0.1)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.busy:  # one studio at a time; a second would tear down the first
            writer.close()
            return
        self.busy = True
        sniffer = RtmpSniffer(self.check_key)
        upstream = await self._connect_upstream()
        if upstream is None:
            self.busy = False
            writer.close()
            return
        up_reader, up_writer = upstream

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        back = asyncio.create_task(downstream())
        try:
            while data := await reader.read(65536):
                sniffer.feed(data)  # raises before a refused byte reaches ffmpeg
                up_writer.write(data)
                await up_writer.drain()
        except RtmpRefusedError as exc:
            self.refused += 1
            # The reason, never the key: keys must not reach any log.
            logger.warning("RTMP ingest refused a publisher on port %d: %s", self.port, exc)
        except (ConnectionError, OSError):
            pass
        finally:
            back.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await back
            for w in (writer, up_writer):
                w.close()
            self.busy = False


def rtmp_listener_argv(
    ffmpeg: str, port: int, relay_port: int, *, audio_only: bool = False
) -> list[str]:
    """ffmpeg accepting one RTMP publisher on loopback (behind the gate) and relaying it as TS.

    audio_only: an interpreter, whose sound should be on air within a second.
    """
    argv = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",  # stdin is not ours
        "-loglevel",
        "error",  # errors only: ffmpeg would log the stream URL, key included, at info
        "-progress",
        "pipe:1",  # bitrate and timing for the control room
        "-stats_period",
        "1",
    ]
    if audio_only:
        # One AAC track needs little probing; the default waited 5.4 s before relaying
        # anything (measured), 0.9 s with these.
        argv += ["-probesize", "32768", "-analyzeduration", "500000"]
    return [
        *argv,
        "-listen",
        "1",  # be the RTMP server; the gate in front checks the key
        "-i",
        f"rtmp://127.0.0.1:{port}/live/stream",  # the gate forwards here; the key is not in it
        *_relay_output(relay_port),
    ]


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


def srt_listener_argv(ffmpeg: str, script: Path, relay_port: int) -> list[str]:
    """ffmpeg accepting one SRT caller as the script says (key inside it), relaying it as TS."""
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",  # errors only: nothing about the input is worth a line per second
        "-progress",
        "pipe:1",
        "-stats_period",
        "1",
        *srt_script_input(script),
        *_relay_output(relay_port),
    ]


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


def _relay_output(relay_port: int) -> list[str]:
    """The output half of an ingest: remux to MPEG-TS over loopback UDP."""
    return [
        "-map",
        "0:v:0?",  # the studio's picture
        "-map",
        "0:a:0?",  # and its programme sound (interpreters come separately)
        "-c",
        "copy",  # no re-encode here: the ladder encodes once
        "-f",
        "mpegts",
        # 7 TS packets per datagram; nobody listening is fine (unconnected UDP).
        f"udp://127.0.0.1:{relay_port}?pkt_size=1316",
    ]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nobody uses right now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class IngestPorts:
    """Where one session's ingest listens (public) and relays (loopback)."""

    rtmp: int
    srt: int
    rtmp_upstream: int
    rtmp_relay: int
    srt_relay: int


class SessionIngest:
    """RTMP (gated) and SRT listeners for one session, each relaying to its own UDP port."""

    def __init__(
        self, ffmpeg: str, host: str, ports: IngestPorts, key: str, *, audio_only: bool = False
    ) -> None:
        self.ffmpeg = ffmpeg
        self.host = host
        self.ports = ports
        self._key = key
        self.gate = RtmpGate(
            host, ports.rtmp, ports.rtmp_upstream, lambda k: ingest_key_matches(self._key, k)
        )
        self.rtmp = Supervisor(
            rtmp_listener_argv(
                ffmpeg, ports.rtmp_upstream, ports.rtmp_relay, audio_only=audio_only
            ),
            name="ingest-rtmp",
            max_backoff_s=5.0,
            stop_timeout_s=LISTENER_STOP_TIMEOUT_S,
        )
        # Kept until stop(): the supervisor's restarts read it again.
        self._srt_script = SecretScript("srt.ffconcat", srt_listener_script(host, ports.srt, key))
        self.srt = Supervisor(
            srt_listener_argv(ffmpeg, self._srt_script.path, ports.srt_relay),
            name="ingest-srt",
            max_backoff_s=5.0,
            stop_timeout_s=LISTENER_STOP_TIMEOUT_S,
        )

    @property
    def key(self) -> str:
        """The key this ingest accepts."""
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
        """ "rtmp" or "srt" when a studio is sending right now, else None."""
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
        port = self.ports.rtmp_relay if protocol == "rtmp" else self.ports.srt_relay
        # timeout (µs): the reader ends 2 s after the sender stops;
        # fifo_size/overrun_nonfatal: a slow moment drops packets instead of failing.
        return f"udp://127.0.0.1:{port}?timeout=2000000&fifo_size=1000000&overrun_nonfatal=1"

    def live_source(self) -> FeedSource | None:
        """A feeder source reading the relay of the studio that is sending, if any."""
        url = self.relay_url()
        if url is None:
            return None
        return FeedSource(
            url,  # when the studio stops, the feeder ends 2 s later and the slate returns
            input_options=("-probesize", "500000", "-analyzeduration", "1000000"),
            audio_tracks=1,
            live=True,
        )

    def bitrate_kbps(self) -> float | None:
        """The input bitrate of the sending studio, from ffmpeg's progress."""
        protocol = self.receiving()
        if protocol is None:
            return None
        health = (self.rtmp if protocol == "rtmp" else self.srt).health
        return health.bitrate_kbps
