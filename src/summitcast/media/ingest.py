"""Live ingest: a studio's RTMP or SRT stream, checked against the session's key, relayed locally.

A session's ingest is a listener pair (``summitcast.media.listeners``): RTMP arrives at
the key gate first (``summitcast.media.rtmp_gate``: ffmpeg's own RTMP listener accepts
any key), SRT checks its passphrase in the handshake, and no key is in any argv. Each
listener remuxes what it receives (no re-encode) to MPEG-TS over UDP on loopback; the
playout's live feeder reads that relay only while the session is cut to live.
"""

from __future__ import annotations

from pathlib import Path

from summitcast.domain.broadcast import ingest_key_matches
from summitcast.media.listeners import ListenerPair, ListenerPorts, srt_script_input
from summitcast.media.listeners import free_port as free_port  # re-exported for the runtime

# Where one session's ingest listens (public) and relays (loopback).
IngestPorts = ListenerPorts


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


class SessionIngest(ListenerPair):
    """RTMP (gated) and SRT listeners for one session, each relaying to its own UDP port."""

    def __init__(
        self, ffmpeg: str, host: str, ports: ListenerPorts, key: str, *, audio_only: bool = False
    ) -> None:
        super().__init__(
            host,
            ports,
            key,
            check_key=lambda sent: ingest_key_matches(key, sent),
            rtmp_argv=rtmp_listener_argv(
                ffmpeg, ports.rtmp_upstream, ports.rtmp_relay, audio_only=audio_only
            ),
            srt_argv=lambda script: srt_listener_argv(ffmpeg, script, ports.srt_relay),
            name="ingest",
        )
        self.ffmpeg = ffmpeg
