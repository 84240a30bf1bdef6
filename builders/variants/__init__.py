"""Robustness variants of a dataset's references, by name: ``get_variant("shuffle:4")``.

Each module in this package registers one variant with :func:`register_variant`; a new variant is
one new file. Names are ``name[:arg]``; ``Variant.name`` is the canonical spelling (aliases such as
``shuffle:medium`` resolve to ``shuffle:4``), which is what manifests record and what seeds the rng.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

from .base import Variant, VariantError, VariantInput, variant_rng

__all__ = ["Variant", "VariantError", "VariantInput", "variant_rng", "get_variant", "list_variants",
           "variant_usage", "register_variant"]

_FACTORIES: dict[str, Callable[[str | None], Variant]] = {}
_USAGE: dict[str, str] = {}
_discovered = False


def register_variant(name: str, usage: str) -> Callable:
    """Register ``factory(arg: str | None) -> Variant`` under ``name``; ``usage`` is its CLI syntax."""

    def wrap(factory: Callable[[str | None], Variant]) -> Callable[[str | None], Variant]:
        if name in _FACTORIES and _FACTORIES[name].__module__ != factory.__module__:
            raise ValueError(f"variant {name!r} registered twice")
        _FACTORIES[name], _USAGE[name] = factory, usage
        return factory

    return wrap


def _discover() -> None:
    global _discovered
    if not _discovered:
        for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if info.name != "base" and not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _discovered = True


def get_variant(spec: str) -> Variant:
    """Parse ``name[:arg]`` (e.g. ``shuffle:hard``, ``irrelevant:/data/pool``, ``stitch:5``)."""
    _discover()
    name, _, arg = spec.strip().partition(":")
    if name not in _FACTORIES:
        close = difflib.get_close_matches(name, _FACTORIES, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown variant {name!r}{hint} (known: {', '.join(variant_usage())})")
    return _FACTORIES[name](arg or None)


def list_variants() -> list[str]:
    """Registered variant names, sorted."""
    _discover()
    return sorted(_FACTORIES)


def variant_usage() -> list[str]:
    """The syntax of every variant, e.g. ``shuffle:N[:zero]``."""
    _discover()
    return [_USAGE[n] for n in sorted(_USAGE)]
