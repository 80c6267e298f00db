"""`make lint`'s dependency audit: pip-audit over requirements.lock, strict.

Fails on any known vulnerability that .pip-audit-ignore does not justify, and on any
pinned package that could not be audited. The one exception: when the vulnerability
services themselves are proven unreachable from this machine (PyPI's per-release JSON API
answers 404 for a release its own index lists, and OSV cannot be reached), it says so in
one line and passes, because no change to the project could make that audit run.
"""

from __future__ import annotations

import re
import subprocess
import sys
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


def services_unreachable() -> str | None:
    """Evidence that neither service can answer from here, or None if one can."""
    # pip-audit's own clients ask exactly what the audit asked, at the addresses it uses.
    import requests
    from packaging.version import Version
    from pip_audit._service import OsvService, PyPIService, ResolvedDependency, ServiceError

    name, version = _first_pin()
    pin = ResolvedDependency(name=name, version=Version(version))
    try:
        answered, _ = PyPIService(timeout=TIMEOUT_S).query(pin)
    except ServiceError as error:
        pypi = f"PyPI's vulnerability service: {error}"
    else:
        if not answered.is_skipped():
            return None
        if not _index_lists(name, version):
            return None  # the index is unreachable too, or the pin is wrong: not proven
        pypi = (
            f"PyPI's JSON API knows no release {name} {version}, which the package index "
            "lists (the per-release vulnerability data is not served here)"
        )
    try:
        OsvService(timeout=TIMEOUT_S).query(pin)
    except (ServiceError, requests.RequestException) as error:
        reason = str(error.__cause__ or error)
        return f"{pypi}; OSV: {reason[:160]}"
    return None


def _index_lists(name: str, version: str) -> bool:
    """Whether pip's configured index lists this release."""
    argv = [sys.executable, "-m", "pip", "index", "versions", name]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode == 0 and re.search(rf"\b{re.escape(version)}\b", done.stdout) is not None


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
