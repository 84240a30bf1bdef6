"""Album recipes: each module here registers one with ``@RECIPES.register(name, summary=...)``
on a module-level ``build`` function beside its ``Config`` dataclass.

Adding a recipe is adding one file; ``RECIPES.list()`` and ``RECIPES.get(name)`` find it (``get``
returns the recipe's module-level ``build``; ``RECIPES.info(name)`` has its ``Config`` and summary).
"""
from __future__ import annotations

from core.registry import Registry

RECIPES = Registry("recipe", __name__)
