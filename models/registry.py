"""Model registry: every module in ``models/`` that registers a factory is found automatically.

A model is one file with a :func:`register_model`-decorated factory (timm style) plus one test.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

from .base import RefSRModel, ModelSpec

_FACTORIES: dict[str, Callable[..., RefSRModel]] = {}
_SPECS: dict[str, ModelSpec] = {}
_MODULES: dict[str, str] = {}
_NOT_MODELS = {"base", "registry", "checkpoint", "weights"}
_discovered = False


def register_model(spec: ModelSpec) -> Callable[[Callable[..., RefSRModel]], Callable[..., RefSRModel]]:
    """Register a factory under ``spec.name``; a second registration of a name is an error."""

    def wrap(factory: Callable[..., RefSRModel]) -> Callable[..., RefSRModel]:
        name = spec.name
        if name in _FACTORIES and _MODULES[name] != factory.__module__:
            raise ValueError(f"model {name!r} registered twice: {_MODULES[name]} and {factory.__module__}")
        _FACTORIES[name], _SPECS[name], _MODULES[name] = factory, spec, factory.__module__
        return factory

    return wrap


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    pkg_dir = Path(__file__).parent
    for info in pkgutil.iter_modules([str(pkg_dir)]):
        if info.name.startswith("_") or info.name in _NOT_MODELS:
            continue
        importlib.import_module(f"{__package__}.{info.name}")
    _discovered = True


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _discover()
    return sorted(_FACTORIES)


def get_spec(name: str) -> ModelSpec:
    _discover()
    _check(name)
    return _SPECS[name]


def create_model(name: str, **kwargs) -> RefSRModel:
    """Build a model by name with random (or, for parameter-free models, no) weights."""
    _discover()
    _check(name)
    model = _FACTORIES[name](**kwargs)
    model.spec = _SPECS[name]
    return model


def _check(name: str) -> None:
    if name not in _FACTORIES:
        close = difflib.get_close_matches(name, _FACTORIES, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown model {name!r}{hint} (known: {', '.join(sorted(_FACTORIES))})")
