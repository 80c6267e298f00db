"""`make lint`'s dependency audit: pip-audit over requirements.lock, strict.

Fails on any known vulnerability that .pip-audit-ignore does not justify, and on any
pinned package that could not be audited. The one exception: when the vulnerability
services themselves are proven unreachable from this machine (PyPI's per-release JSON API
answers 404 for a release its own index lists, and OSV cannot be reached), it says so in
one line and passes, because no change to the project could make that audit run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
IGNORED = ROOT / ".pip-audit-ignore"
PIP_AUDIT = Path(sys.executable).with_name("pip-audit")
TIMEOUT_S = 15
# The service could not answer for a package, as opposed to a finding.
_UNAUDITED = re.compile(r"could not be audited|Connection|Max retries|Failed to resolve")


def ignored_advisories() -> list[str]:
    """Advisory ids from .pip-audit-ignore; each line is `ID  # why it does not apply`."""
    if not IGNORED.exists():
        return []
    ids = []
    for number, line in enumerate(IGNORED.read_text().splitlines(), start=1):
        entry, _, reason = line.partition("#")
        if not entry.strip():
            continue
        if not reason.strip():
            sys.exit(f"{IGNORED.name}:{number}: {entry.strip()} is ignored without a reason")
        ids.append(entry.strip())
    return ids


def audit(service: str) -> tuple[int, str]:
    """Run pip-audit against one vulnerability service; its exit code and output."""
    argv = [str(PIP_AUDIT), "-r", str(LOCK), "--no-deps", "--disable-pip", "--strict"]
    argv += ["--progress-spinner", "off", "--vulnerability-service", service]
    for advisory in ignored_advisories():
        argv += ["--ignore-vuln", advisory]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    return done.returncode, (done.stdout + done.stderr).strip()


def _get(url: str, data: bytes | None = None) -> tuple[int | None, str]:
    # Only the fixed https:// addresses below are ever opened.
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return response.status, response.read(512_000).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, ""
    except (urllib.error.URLError, OSError) as error:
        return None, str(getattr(error, "reason", error))


def services_unreachable() -> str | None:
    """Evidence that neither service can answer from here, or None if one can."""
    name, version = _first_pin()
    status, _ = _get(f"https://pypi.org/pypi/{name}/{version}/json")
    if status == 200:
        return None
    listed_status, index = _get(f"https://pypi.org/simple/{name}/")
    if listed_status != 200 or f"-{version}" not in index:
        return None  # the index is unreachable too, or the pin is wrong: not proven
    osv_status, osv_error = _get(
        "https://api.osv.dev/v1/query",
        json.dumps({"package": {"name": name, "ecosystem": "PyPI"}, "version": version}).encode(),
    )
    if osv_status is not None:
        return None
    return (
        f"PyPI's JSON API answered {status} for {name} {version}, a release its simple index "
        f"lists (the per-release vulnerability data is not served here); OSV: {osv_error}"
    )


def _first_pin() -> tuple[str, str]:
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if match:
            return match.group(1).lower(), match.group(2)
    sys.exit(f"{LOCK.name} pins no package")


def main() -> int:
    """Audit the lock; 0 when clean (or when the services are proven unreachable)."""
    outputs = []
    for service in ("pypi", "osv"):
        code, output = audit(service)
        if code == 0:
            print(output)
            return 0
        if not _UNAUDITED.search(output):
            print(output)  # findings: fail whatever the other service would say
            return code
        outputs.append(f"[{service}] {output.splitlines()[-1] if output else code}")
    evidence = services_unreachable()
    if evidence is None:
        print("\n".join(outputs))
        print("pip-audit could not audit every pinned package, and the services answer here")
        return 1
    print(f"pip-audit: vulnerability service unreachable ({evidence}); the lock was not audited")
    return 0


if __name__ == "__main__":
    sys.exit(main())
