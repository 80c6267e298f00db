"""The floor plan is kept by import-linter ([tool.importlinter] in pyproject.toml), and it bites."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
# The venv's console script, beside the interpreter that runs the tests.
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACT_NAMES = {
    contract["id"]: contract["name"]
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"][
        "importlinter"
    ]["contracts"]
}


def _lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the summitcast found under cwd/src with cwd's pyproject.toml."""
    # Wide columns: the report (rich) would wrap a long contract name over two lines.
    env = {**os.environ, "PYTHONPATH": str(cwd / "src"), "COLUMNS": "1000", "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(cwd / "pyproject.toml"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _broken_section(output: str) -> str:
    """The part of lint-imports' report that lists the broken contracts (empty when none)."""
    _, found, broken = output.partition("Broken contracts")
    return broken if found else ""


def test_every_import_contract_is_kept() -> None:
    result = _lint_imports(ROOT)

    assert result.returncode == 0, _broken_section(result.stdout) or result.stdout + result.stderr


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A scratch copy of the package (Python files only) and of the contracts."""
    shutil.copytree(
        ROOT / "src" / "summitcast",
        tmp_path / "src" / "summitcast",
        ignore=lambda folder, names: [
            name
            for name in names
            if name == "__pycache__" or not (name.endswith(".py") or (Path(folder) / name).is_dir())
        ],
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


# A wrong import, the module it is written into, the contract it breaks and the line that
# lint-imports must name.
WRONG_IMPORTS = [
    pytest.param(
        "domain/wrong.py",
        "import summitcast.web",
        "layers",
        "summitcast.domain.wrong -> summitcast.web",
        id="domain-imports-web",
    ),
    pytest.param(
        "media/wrong.py",
        "from summitcast import services",
        "layers",
        "summitcast.media.wrong -> summitcast.services",
        id="media-imports-services",
    ),
    pytest.param(
        "storage/wrong.py",
        "import summitcast.presence",
        "layers",
        "summitcast.storage.wrong -> summitcast.presence",
        id="adapter-imports-sibling-adapter",
    ),
    pytest.param(
        "web/routes/wrong.py",
        "from summitcast.storage import tables",
        "thin-routes",
        "summitcast.web.routes.wrong -> summitcast.storage.tables",
        id="route-imports-tables",
    ),
    pytest.param(
        "domain/wrong.py",
        "import sqlalchemy",
        "pure-domain",
        "summitcast.domain.wrong -> sqlalchemy",
        id="domain-imports-sqlalchemy",
    ),
    pytest.param(
        "domain/wrong.py",
        "import subprocess",
        "pure-domain",
        "summitcast.domain.wrong -> subprocess",
        id="domain-runs-processes",
    ),
]


@pytest.mark.parametrize(("module", "line", "contract", "named"), WRONG_IMPORTS)
def test_a_deliberate_wrong_import_breaks_its_contract(
    scratch: Path, module: str, line: str, contract: str, named: str
) -> None:
    (scratch / "src" / "summitcast" / module).write_text(
        f'"""A deliberate wrong import."""\n\n{line}  # noqa: F401\n', "utf-8"
    )

    result = _lint_imports(scratch, "--contract", contract)

    broken = _broken_section(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    assert CONTRACT_NAMES[contract] in broken, broken
    assert named in broken, broken
