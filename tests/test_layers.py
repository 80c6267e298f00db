"""Imports go one way: domain → services → web / cli / media (STYLE.md, docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "summitcast"
# What each layer may not import, by the first part of the module path below summitcast.
FORBIDDEN = {
    "domain": {"services", "web", "cli", "media", "storage", "presence", "loadtest", "app"},
    "services": {"web", "cli", "media", "loadtest", "app"},
    "storage": {"services", "web", "cli", "media", "loadtest", "app"},
}
# Libraries the pure domain must not touch: no I/O frameworks, no database, no processes.
DOMAIN_LIBRARIES = {"sqlalchemy", "redis", "starlette", "fastapi", "subprocess", "httpx", "av"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_downwards(layer: str) -> None:
    offending = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "summitcast" and len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                offending.append(f"{path.relative_to(PACKAGE)} imports {name}")
            if layer == "domain" and parts[0] in DOMAIN_LIBRARIES:
                offending.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offending == []
