"""Importers of dataset layouts users already have (CUFED5, WR-SR, Sun80, plain folders, pair lists).

Each module in this package registers a scanner with :func:`register_layout`; a new layout is one
new file. A scanner maps a source folder to planned samples and skipped inputs; the shared engine
(:mod:`._engine`) checks, links/copies and writes the dataset.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.registry import Registry

from ._base import Scan
from ._engine import ImportReport, import_scan

__all__ = ["LAYOUTS", "register_layout", "list_layouts", "get_layout", "import_layout", "ImportReport"]

LAYOUTS = Registry("layout", __name__)


def register_layout(name: str) -> Callable:
    """Register ``scan(src: Path) -> Scan`` under ``name``."""
    return LAYOUTS.register(name)


def list_layouts(pattern: str | None = None) -> list[str]:
    return LAYOUTS.list(pattern)


def get_layout(name: str) -> Callable[[Path], Scan]:
    return LAYOUTS.get(name)


def import_layout(layout: str, src: str | Path, out: str | Path, **kw) -> ImportReport:
    """Scan ``src`` as ``layout`` and write the dataset at ``out`` (options: see ``import_scan``)."""
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"source {src} does not exist")
    scan = get_layout(layout)(src.resolve())
    return import_scan(scan, layout, Path(out), **kw)
