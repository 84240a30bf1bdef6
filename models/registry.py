"""Model registry: every file in ``models/`` that registers a factory is found automatically.

A model is one file with a :func:`register_model`-decorated factory (timm style) plus one test.
Names may carry a weight tag: ``create_model("ttsr.rec")`` builds TTSR for the ``rec`` weights.
Specs are known without importing the model files (the registry index, see :mod:`core.registry`);
``create_model`` imports only the one model's file.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from core.registry import Registry

from .spec import ModelSpec

if TYPE_CHECKING:
    from .base import RefSRModel

MODELS = Registry("model", __package__, brief=lambda entry: entry.info["spec"].as_dict())


def register_model(spec: ModelSpec, aliases: dict[str, str] | None = None
                   ) -> Callable[[Callable[..., RefSRModel]], Callable[..., RefSRModel]]:
    """Register a factory under ``spec.name``; ``aliases`` maps old names to ``name[.tag]``."""

    def wrap(factory: Callable[..., RefSRModel]) -> Callable[..., RefSRModel]:
        MODELS.add(spec.name, factory, spec=spec)
        for old, new in (aliases or {}).items():
            MODELS.alias(old, new)
        return factory

    return wrap


def split_name(name: str) -> tuple[str, str]:
    """``"ttsr.rec"`` -> ``("ttsr", "rec")``; old names resolve through aliases; the tag is checked."""
    arch, _, tag = MODELS.target(name).partition(".")
    arch = MODELS.canonical(arch)
    get_spec(arch).tag(tag)
    return arch, tag


def full_name(arch: str, tag: str) -> str:
    return arch + (f".{tag}" if tag else "")


def list_models(pattern: str | None = None, tags: bool = False) -> list[str]:
    """Registered architectures, sorted (with ``tags=True``: every ``name.tag``), filtered by ``pattern``."""
    import fnmatch

    names = MODELS.list()
    if tags:
        names = [t for n in names for t in get_spec(n).tag_names()]
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name`` (a tag or an alias in the name is allowed); from the index while the
    model's file is not imported."""
    arch = MODELS.canonical(MODELS.target(name).partition(".")[0])
    return MODELS.info(arch)["spec"] if MODELS.loaded(arch) else _indexed_spec(arch)


@lru_cache(maxsize=None)
def _indexed_spec(arch: str) -> ModelSpec:
    return ModelSpec.from_dict(MODELS.brief(arch))


def create_model(name: str, pretrained: bool = False, checkpoint_path: str | dict | None = None,
                 **kwargs) -> RefSRModel:
    """Build ``name[.tag]``; random weights unless ``pretrained`` (the tag's official files from
    ``$REFSR_WEIGHTS``, an error naming the missing ones) or ``checkpoint_path`` (a file, a folder
    holding the tag's file names, or ``{role: path}``)."""
    arch, tag = split_name(name)
    model = MODELS.create(arch, **kwargs)
    model.spec = get_spec(arch)
    if pretrained or checkpoint_path is not None:
        from .weights import load_weights, resolve_weights

        resolved = resolve_weights(full_name(arch, tag), checkpoint_path)
        load_weights(model, resolved.files)
    return model
