"""Check rendered nginx files with nginx itself (`nginx -t`)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from summitcast.errors import ValidationError

NGINX = "/usr/sbin/nginx"


@dataclass(frozen=True)
class NginxCheck:
    """What `nginx -t` said about one file."""

    path: Path
    ok: bool
    message: str  # nginx's own words (its last line when it failed)


def nginx_files(out_dir: Path) -> list[Path]:
    """The nginx configs of a rendered folder (out_dir/nginx/*.conf)."""
    if not out_dir.is_dir():
        raise ValidationError(f"{out_dir}: no such folder (render one with `deploy render`)")
    files = sorted((out_dir / "nginx").glob("*.conf"))
    if not files:
        raise ValidationError(f"{out_dir}: holds no nginx/*.conf (is it a rendered folder?)")
    return files


def check_nginx(
    out_dir: Path, *, nginx: str | None = None, timeout_s: float = 30.0
) -> list[NginxCheck]:
    """Run `nginx -t` on every nginx file of out_dir, each with a fresh scratch prefix."""
    binary = nginx or shutil.which("nginx") or NGINX
    if not Path(binary).is_file():
        raise ValidationError(f"nginx is not installed ({binary} not found)")
    results = []
    for path in nginx_files(out_dir):
        # A scratch prefix: the check writes its pid, logs and cache folders there and never
        # into the topology's root (which may be another machine's path).
        with tempfile.TemporaryDirectory(prefix=f"nginx-check-{path.stem}-") as prefix:
            copy = Path(prefix) / path.name
            copy.write_text(_free_listeners(path.read_text(encoding="utf-8")), encoding="utf-8")
            argv = [binary, "-t", "-q", "-e", "stderr", "-p", f"{prefix}/", "-c", str(copy)]
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        ok = done.returncode == 0
        reason = "ok" if ok else _reason(done).replace(str(copy), str(path))
        results.append(NginxCheck(path, ok, reason))
    return results


def _free_listeners(text: str) -> str:
    """The config with each listen address replaced by a free loopback port."""

    # nginx -t binds every listen address: a production address does not exist on the
    # checking machine, and a running cluster holds its own. One line each, so nginx's
    # line numbers still point into the original file.
    def free(match: re.Match[str]) -> str:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return f"{match.group(1)}127.0.0.1:{port}{match.group(3)}"

    return re.sub(r"^(\s*listen\s+)(\S+?)((\s[^;]*)?;)", free, text, flags=re.MULTILINE)


def _reason(done: subprocess.CompletedProcess[str]) -> str:
    """nginx's complaint: its [emerg] line (the last line only says "test failed")."""
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    serious = [line for line in lines if "[emerg]" in line or "[alert]" in line]
    line = (serious or lines or [f"nginx exited with {done.returncode}"])[0]
    # "2026/12/08 00:53:04 [emerg] 17163#17163: invalid value ..." → "invalid value ..."
    return re.sub(r"^\S+ \S+ \[(emerg|alert)\] \d+#\d+: ", "", line)
