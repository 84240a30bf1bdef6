"""The package layering: ``core`` imports nothing of the project; ``models`` and ``builders`` import
only ``core``; ``benchmark`` sits on top. Lazy imports inside functions count too."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "models", "builders", "benchmark")
ALLOWED = {"core": set(), "models": {"core"}, "builders": {"core"}, "benchmark": {"core", "models", "builders"}}


def imports_between_packages() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
                edges[pkg] |= {n.split(".")[0] for n in names if n.split(".")[0] in PACKAGES} - {pkg}
    return edges


def test_layering_has_no_cycle():
    edges = imports_between_packages()
    assert {p: edges[p] - ALLOWED[p] for p in PACKAGES} == {p: set() for p in PACKAGES}, edges
