"""Where HLS playlists and segments live: a small protocol, a local folder, memory, and
the registry of each session's store (``SessionStores``, which also serves them)."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol, runtime_checkable

from summitcast.errors import ValidationError


def _clean(path: str) -> str:
    """Normalise a store path and refuse anything that could escape the store."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise ValidationError(f"bad segment path {path!r}")
    parts = PurePosixPath(path).parts
    if any(part in ("..", ".") for part in parts):
        raise ValidationError(f"bad segment path {path!r}")
    return "/".join(parts)


def clean_path(path: str) -> str:
    """A store path normalised, or ValidationError if it could escape the store's folder."""
    return _clean(path)


@runtime_checkable
class SegmentStore(Protocol):
    """Seven operations an HLS origin needs; paths are relative, '/'-separated."""

    def put(self, path: str, data: bytes) -> None:
        """Store data at path; readers see the old or the new bytes, never a mix."""

    def get(self, path: str) -> bytes | None:
        """Return the bytes at path, or None when nothing is stored there."""

    def delete(self, path: str) -> None:
        """Remove path; removing a missing path is not an error."""

    def list(self, prefix: str = "") -> list[str]:
        """Return every stored path starting with prefix, sorted."""

    def exists(self, path: str) -> bool:
        """Whether something is stored at path."""

    def url_for(self, path: str) -> str:
        """The URL (relative to the HLS base URL) a player fetches path from."""

    def local_folder(self) -> Path | None:
        """The folder on this machine holding the stored files as they are, or None."""


class InMemorySegmentStore:
    """A SegmentStore in a dict, for tests and for the embedded demo."""

    def __init__(self, base_url: str = "") -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()  # the encoder watcher and the web app share it
        self._base_url = base_url.rstrip("/")

    def put(self, path: str, data: bytes) -> None:
        """Store data at path."""
        key = _clean(path)
        with self._lock:
            self._data[key] = bytes(data)

    def get(self, path: str) -> bytes | None:
        """Return the bytes at path, or None."""
        with self._lock:
            return self._data.get(_clean(path))

    def delete(self, path: str) -> None:
        """Remove path if present."""
        with self._lock:
            self._data.pop(_clean(path), None)

    def list(self, prefix: str = "") -> list[str]:
        """Every stored path starting with prefix, sorted."""
        with self._lock:
            return sorted(k for k in self._data if k.startswith(prefix))

    def exists(self, path: str) -> bool:
        """Whether path is stored."""
        with self._lock:
            return _clean(path) in self._data

    def url_for(self, path: str) -> str:
        """URL of path under the base URL."""
        return f"{self._base_url}/{_clean(path)}"

    def local_folder(self) -> Path | None:
        """None: nothing of this store is a file."""
        return None


class LocalSegmentStore:
    """A SegmentStore in a folder, served as static files by the app, nginx or a CDN origin."""

    def __init__(self, folder: Path, base_url: str = "", *, create: bool = True) -> None:
        self.folder = Path(folder)
        if create:  # not for readers: a request must not create folders
            self.folder.mkdir(parents=True, exist_ok=True)
        self._base_url = base_url.rstrip("/")

    def local_path(self, path: str) -> Path:
        """The file that holds path (ffmpeg writes there directly)."""
        return self.folder / _clean(path)

    def put(self, path: str, data: bytes) -> None:
        """Write to a temporary file in the same folder, then rename over the target."""
        target = self.local_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Same folder, so os.replace is an atomic rename on POSIX: an HTTP server
        # reading the playlist mid-update sees the old or the new file, never half.
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the web server must read it
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, path: str) -> bytes | None:
        """Return the file's bytes, or None."""
        try:
            return self.local_path(path).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def delete(self, path: str) -> None:
        """Remove the file if present."""
        self.local_path(path).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[str]:
        """Every stored file starting with prefix, sorted, temporary files left out."""
        found = []
        for file in self.folder.rglob("*"):
            if file.is_file() and not file.name.startswith(".tmp-"):
                rel = file.relative_to(self.folder).as_posix()
                if rel.startswith(prefix):
                    found.append(rel)
        return sorted(found)

    def exists(self, path: str) -> bool:
        """Whether the file exists."""
        return self.local_path(path).is_file()

    def url_for(self, path: str) -> str:
        """URL of path under the base URL."""
        return f"{self._base_url}/{_clean(path)}"

    def local_folder(self) -> Path | None:
        """The store's folder: ffmpeg may write there and the origin send files from it."""
        return self.folder


class SessionStores:
    """Each session's segment store as configured: a folder under segment_dir, or memory.

    One per app: the broadcast manager opens a session's store for its playout, and
    the HLS origin reads any session's store through ``hls_file``, whether or not this
    node runs encoders (a folder is found by its path; memory only on the node that
    filled it). With redundant encoders the master names ``enc-{name}/X``: this node
    serves ``enc-{its own name}/X`` as its own ``X`` and nothing of another encoder's.
    """

    def __init__(
        self, kind: Literal["local", "memory"], segment_dir: Path, encoder_name: str = ""
    ) -> None:
        self.kind = kind
        self.segment_dir = segment_dir
        self.encoder_name = encoder_name
        # Stores opened on this node, by (summit slug, session id): readers find a memory
        # store here after its session ended, and never make one by asking.
        self._opened: dict[tuple[str, int], SegmentStore] = {}

    def folder(self, summit_slug: str, session_id: int) -> Path:
        """Where a session's HLS lives when the store is local."""
        return self.segment_dir / summit_slug / str(session_id)

    def open(self, summit_slug: str, session_id: int) -> SegmentStore:
        """The store a session's playout fills (a new one in memory; the folder is not made)."""
        store: SegmentStore = (
            LocalSegmentStore(self.folder(summit_slug, session_id), create=False)
            if self.kind == "local"
            else InMemorySegmentStore()
        )
        self._opened[(summit_slug, session_id)] = store
        return store

    def find(self, summit_slug: str, session_id: int) -> SegmentStore | None:
        """The store a session's HLS is read from (creates nothing), or None."""
        if self.kind == "local":
            return LocalSegmentStore(self.folder(summit_slug, session_id), create=False)
        return self._opened.get((summit_slug, session_id))

    def hls_file(self, summit_slug: str, session_id: int, name: str) -> bytes | Path | None:
        """A session's file: its bytes, the local file holding it (sent as it is), or None."""
        if self.encoder_name:
            encoder, _, rest = name.partition("/")
            if encoder.startswith("enc-"):
                # Another encoder's file is never this node's to serve: a player must
                # get it from that encoder's origin, or fail over to this one's copy.
                if encoder != f"enc-{self.encoder_name}" or not rest:
                    return None
                name = rest
        store = self.find(summit_slug, session_id)
        if store is None:
            return None
        folder = store.local_folder()
        if folder is None:
            return store.get(name)
        target = folder / _clean(name)
        try:
            found = target.is_file()
        except (OSError, ValueError):  # a name the file system refuses (too long, a NUL byte)
            found = False
        if not found:
            return None
        if name.endswith(".m3u8"):
            # Read whole: ffmpeg replaces playlists by renaming, so one read sees one version.
            return target.read_bytes()
        return target  # segments: served straight from disk (sendfile, no copy)
