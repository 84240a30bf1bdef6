"""Album recipes: each module here registers one with ``@RECIPES.register(Config.name, summary=...,
config=Config)`` on a module-level ``build`` function beside its ``Config`` dataclass (a subclass of
``_common.AlbumConfig`` carrying ``name`` and ``version``; its fields become ``builders.build``
options). ``build`` runs ``_common.build_recipe`` around the module's ``plan`` (what to write, HF
``_split_generators``) and ``generate`` (the rows with their images, HF ``_generate_examples``).

Adding a recipe is adding one file; ``RECIPES.list()`` and ``RECIPES.get(name)`` find it (``get``
returns the recipe's module-level ``build``; ``RECIPES.info(name)`` has its ``Config`` and summary).
"""
from __future__ import annotations

from core.registry import Registry

RECIPES = Registry("recipe", __name__, brief=lambda entry: {"summary": entry.info["summary"]})
