"""Importers of dataset layouts users already have (CUFED5, WR-SR, Sun80, plain folders, pair lists).

Each module in this package registers a scanner with :func:`register_layout`; a new layout is one
new file. A scanner maps a source folder to planned samples and skipped inputs; the engine
(:mod:`._engine`) checks every image and plans the rows, which the shared writer
(:mod:`builders.writer`) links/copies and writes.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from builders.writer import check_target
from core.registry import Registry

if TYPE_CHECKING:  # the engine (pandas, OpenCV) is imported when a layout is imported, not listed
    from ._base import Scan
    from ._engine import ImportReport

__all__ = ["LAYOUTS", "register_layout", "list_layouts", "get_layout", "import_layout"]

LAYOUTS = Registry("layout", __name__, brief=lambda entry: dict(entry.info))


def register_layout(name: str, version: str = "1.0") -> Callable:
    """Register ``scan(src: Path) -> Scan`` under ``name``; ``version`` (recorded in the dataset spec)
    changes when the same source would import differently."""
    return LAYOUTS.register(name, version=version)


def list_layouts(pattern: str | None = None) -> list[str]:
    return LAYOUTS.list(pattern)


def get_layout(name: str) -> Callable[[Path], Scan]:
    return LAYOUTS.get(name)


def import_layout(layout: str, src: str | Path, out: str | Path, **kw) -> ImportReport:
    """Scan ``src`` as ``layout`` and write the dataset at ``out`` (options: see ``import_scan``)."""
    from ._engine import import_scan

    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"source {src} does not exist")
    if src.is_file() and layout != "pairs":
        raise ValueError(f"source {src} is a file; the {layout} layout reads a folder")
    check_target(out, kw.get("overwrite", False))  # before scanning: a run that cannot be written never starts
    scan = get_layout(layout)(src.resolve())
    return import_scan(scan, layout, Path(out), version=LAYOUTS.info(layout)["version"], **kw)
