"""Importers of dataset layouts users already have (CUFED5, WR-SR, Sun80, plain folders, pair lists).

Each module in this package registers a scanner with :func:`register_layout`; a new layout is one
new file. A scanner maps a source folder to planned samples and skipped inputs; the shared engine
(:mod:`.engine`) checks, links/copies and writes the dataset.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

from .base import Scan
from .engine import ImportReport, import_scan

__all__ = ["register_layout", "list_layouts", "get_layout", "import_layout", "ImportReport"]

_SCANNERS: dict[str, Callable[[Path], Scan]] = {}
_NOT_LAYOUTS = {"base", "engine"}
_discovered = False


def register_layout(name: str) -> Callable:
    """Register ``scan(src: Path) -> Scan`` under ``name``."""

    def wrap(fn: Callable[[Path], Scan]) -> Callable[[Path], Scan]:
        if name in _SCANNERS and _SCANNERS[name].__module__ != fn.__module__:
            raise ValueError(f"layout {name!r} registered twice")
        _SCANNERS[name] = fn
        return fn

    return wrap


def _discover() -> None:
    global _discovered
    if not _discovered:
        for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if info.name not in _NOT_LAYOUTS and not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _discovered = True


def list_layouts() -> list[str]:
    _discover()
    return sorted(_SCANNERS)


def get_layout(name: str) -> Callable[[Path], Scan]:
    _discover()
    if name not in _SCANNERS:
        close = difflib.get_close_matches(name, _SCANNERS, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown layout {name!r}{hint} (known: {', '.join(sorted(_SCANNERS))})")
    return _SCANNERS[name]


def import_layout(layout: str, src: str | Path, out: str | Path, **kw) -> ImportReport:
    """Scan ``src`` as ``layout`` and write the dataset at ``out`` (options: see ``import_scan``)."""
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"source {src} does not exist")
    scan = get_layout(layout)(src.resolve())
    return import_scan(scan, layout, Path(out), **kw)
