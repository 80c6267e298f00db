"""The parts of HLS playlists a simulated viewer reads (RFC 8216), parsed without decoding.

A small copy of what ``summitcast.media.playlist`` reads (the load tool is an adapter and
may not import media) plus the master's EXT-X-STREAM-INF / EXT-X-MEDIA lines. Redundant
variants (the same rung once per encoder, ``enc-a/…`` and ``enc-b/…``) are grouped into
one ``Rung`` with one ``Pathway`` each, the way hls.js turns them into pathways.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from posixpath import dirname, normpath
from urllib.parse import urljoin

from summitcast.errors import ValidationError

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
AUDIO_ONLY = "audio"  # the rung name of the variant without video, as --mix spells it


def parse_attributes(text: str) -> dict[str, str]:
    """An attribute list (``A=1,B="x,y"``) as a dict, quotes removed."""
    return {key: value.strip('"') for key, value in _ATTR.findall(text)}


@dataclass(frozen=True, slots=True)
class Pathway:
    """One copy of a rung: its own playlist and, for video rungs, its audio playlist."""

    uri: str  # absolute path of the variant's media playlist
    audio_uri: str | None  # absolute path of the audio rendition to fetch beside it


@dataclass(slots=True)
class Rung:
    """A variant of the master, with every redundant copy of it in master order."""

    name: str  # "720p", or "audio" for the audio-only variant
    bandwidth: int
    pathways: list[Pathway] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MediaSegment:
    """One segment of a media playlist."""

    sequence: int
    duration_s: float
    uri: str  # absolute path
    init_uri: str | None  # the EXT-X-MAP in force for it, absolute path


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    """What a player needs of a media playlist."""

    target_duration_s: float
    media_sequence: int
    segments: tuple[MediaSegment, ...]
    ended: bool

    @property
    def last_sequence(self) -> int:
        """The sequence number of the newest segment (media_sequence - 1 when empty)."""
        return self.media_sequence + len(self.segments) - 1


def resolve(base_path: str, uri: str) -> str:
    """A playlist URI made absolute against the path of the playlist that names it."""
    if "./" not in uri and not uri.startswith(("/", "http://", "https://")):
        # The common case (seg_12.m4s, 720p/index.m3u8), at a tenth of urljoin's cost.
        return base_path[: base_path.rfind("/") + 1] + uri
    if uri.startswith(("http://", "https://")):
        raise ValidationError(f"absolute URI {uri!r}: only paths on the same edge are followed")
    joined = urljoin(base_path, uri)
    # urljoin keeps "a/../b"; the edges' caches key on the normalised path.
    return normpath(joined) if "/." in joined else joined


def _rung_name(uri: str, attrs: dict[str, str]) -> str:
    if "RESOLUTION" not in attrs:
        return AUDIO_ONLY
    folder = dirname(uri).rsplit("/", 1)[-1]
    if folder and not folder.startswith("enc-"):
        return folder
    return attrs["RESOLUTION"].split("x")[-1] + "p"


def _audio_groups(lines: list[str], base: str) -> dict[str, str]:
    """Each AUDIO group's rendition to fetch: the DEFAULT=YES one, else the first."""
    groups: dict[str, str] = {}
    defaults: set[str] = set()
    for line in lines:
        if not line.startswith("#EXT-X-MEDIA:"):
            continue
        attrs = parse_attributes(line.partition(":")[2])
        group, uri = attrs.get("GROUP-ID"), attrs.get("URI")
        if attrs.get("TYPE") != "AUDIO" or not group or not uri or group in defaults:
            continue
        if group not in groups or attrs.get("DEFAULT") == "YES":
            groups[group] = resolve(base, uri)
        if attrs.get("DEFAULT") == "YES":
            defaults.add(group)
    return groups


def parse_master(text: str, base: str) -> list[Rung]:
    """The rungs of a master playlist at path ``base``, redundant variants as pathways."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValidationError("a playlist must start with #EXTM3U")
    groups = _audio_groups(lines, base)
    rungs: dict[tuple[str, ...], Rung] = {}
    pending: dict[str, str] | None = None
    for line in lines[1:]:
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = parse_attributes(line.partition(":")[2])
        elif pending is not None and not line.startswith("#"):
            uri = resolve(base, line)
            # Redundant copies differ only in their URIs and group ids (aud-a, aud-b).
            key = tuple(pending.get(k, "") for k in ("BANDWIDTH", "RESOLUTION", "CODECS"))
            rung = rungs.get(key)
            if rung is None:
                name = _rung_name(line, pending)
                rung = rungs[key] = Rung(name, int(pending.get("BANDWIDTH", "0") or 0))
            audio = groups.get(pending.get("AUDIO", ""))
            with_audio = rung.name != AUDIO_ONLY and audio not in (None, uri)
            rung.pathways.append(Pathway(uri, audio if with_audio else None))
            pending = None
    if not rungs:
        raise ValidationError("the master playlist lists no variant")
    return list(rungs.values())


def parse_media(text: str, base: str) -> MediaPlaylist:
    """A media playlist at path ``base``: its segments with absolute URIs."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValidationError("a playlist must start with #EXTM3U")
    target, first, ended = 0.0, 0, False
    segments: list[MediaSegment] = []
    duration: float | None = None
    init: str | None = None
    for line in lines[1:]:
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-TARGETDURATION":
            target = float(value)
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            first = int(value)
        elif tag == "#EXT-X-MAP":
            init = resolve(base, parse_attributes(value).get("URI", ""))
        elif tag == "#EXTINF":
            duration = float(value.split(",", 1)[0])
        elif tag == "#EXT-X-ENDLIST":
            ended = True
        elif not line.startswith("#") and duration is not None:
            sequence = first + len(segments)
            segments.append(MediaSegment(sequence, duration, resolve(base, line), init))
            duration = None
    if target <= 0:
        raise ValidationError("a media playlist needs #EXT-X-TARGETDURATION")
    return MediaPlaylist(target, first, tuple(segments), ended)
