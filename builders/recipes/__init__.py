"""Album recipes: each module here with ``RECIPE`` (its name), ``SUMMARY``, ``Config`` and ``build`` is one.

Adding a recipe is adding one file; ``get(name)`` and ``names()`` find it.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def _discover() -> dict[str, ModuleType]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if all(hasattr(module, a) for a in ("RECIPE", "SUMMARY", "Config", "build")):
            found[module.RECIPE] = module
    return dict(sorted(found.items()))


def names() -> list[str]:
    return list(_discover())


def get(name: str) -> ModuleType:
    recipes = _discover()
    if name not in recipes:
        raise KeyError(f"unknown recipe {name!r}; known: {sorted(recipes)}")
    return recipes[name]
