"""Training recipes as data: ``benchmark/recipes/<model>[.<tag>].yaml``.

A recipe says what the authors trained with (losses, optimiser, schedule, length, batch, crops,
augmentations) and where each number comes from (``source``). It holds no code: the trainer reads
the fields below and refuses anything it does not know, so a typo never trains silently with a
default. Lengths are given in the authors' unit (``epochs`` of the training split, or
``iterations``); the trainer turns epochs into steps with the size of the split it is given.

Fields (all but ``model`` optional)::

    model: masa.rec                 # the zoo name[.tag] whose official files the run writes (a stage's recipe
                                    # may have its own name: c2_matching.teacher.yaml trains c2_matching's extractor)
    source: {paper: ..., code: ..., notes: ...}    # citations (free text)
    gpu_hours: "..."                # what the authors report (or "not reported")
    model_kwargs: {}                # architecture options (default: the official config)
    losses: [{type: l1, weight: 1.0}]      # benchmark/training/losses.py: l1 | mse | perceptual | texture |
                                    # texture_gram | adversarial | contrastive | distillation; options beside
                                    # type/weight; after: {epochs|iterations: N}
    optimizer: {type: adam, lr: 1.0e-4, betas: [0.9, 0.999], eps: 1.0e-8, weight_decay: 0,
                param_groups: [{prefix: LTE., lr: 1.0e-5}, {contains: [offset, small], lr: 1.0e-6}],
                freeze: [prefix, ...]}      # a parameter joins the first group that matches its name
    schedule: {type: constant | cosine | step | multistep, unit: epoch | step, period: N (cosine T_max),
               step_size: N, gamma: g (step, multistep), milestones: [N, ...] (multistep), eta_min: 0,
               offset: 1}
    epochs: N  |  iterations: N
    batch_size: 9                   # global batch (split evenly over torchrun processes)
    crop_size: 160                  # HR crop side (random crop inside the train crop)
    ref_size: 160                   # reference side in a batch (random crop / zero pad)
    grad_clip: null                 # max gradient norm, or null
    augment: {hflip: 0.5, vflip: 0.5, rot90: 1.0, transpose: 0.0, ref_independent: true, swap: 0.0,
              color_jitter: {p, alpha: [lo, hi], beta: [lo, hi], target: ref | hr | either},
              shuffle_ref: {p, grid, remainder}, geometric_from_epoch: 0}
    protocol: refsr-standard        # whose kernel makes the LR (benchmark/protocols)
    export: {wrapper: null}         # official file wrapper key ("params" for BasicSR files)
    train_roles: [net]              # which weight files the run trains and writes
    frozen_roles: null              # roles loaded from their official files and frozen (null: every role not
                                    # trained; [] for a stage that uses only the trained role)
    init_from: {model: masa.rec, weights: official, roles: [net]}   # start roles from these files (a stage
                                    # built on another: MASA's GAN on MASA-rec); weights: official | a folder
                                    # (a run's OUT) or file; a bare file name is also looked up in
                                    # $REFSR_WEIGHTS[/<arch>]; roles: default the trained ones (a frozen role
                                    # listed here comes from these files instead of its official one)
    pairs: null                     # {type: homography, perturb: [lo, hi], window: N, input: hr | lr_up}:
                                    # synthetic pairs (an HR crop and its warped copy with the ground-truth
                                    # flow) instead of HR + reference, for correspondence (extractor) stages
    vgg19_init: [net_g.LTE]         # submodules a fresh run loads from torchvision's ImageNet VGG19 file
                                    # (layers keep torchvision's features indices; DEF's frozen extractor)
    checkpoint_every: 1000          # steps
    validate_every: 0               # steps (0 = only at the end)
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.yaml_io import load_yaml

from .losses import LOSSES

RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipes"

LOSSES_KNOWN = ("l1", "mse", "perceptual", "adversarial", "texture", "texture_gram", "contrastive", "distillation")
TOP_FIELDS = {"model", "source", "gpu_hours", "model_kwargs", "losses", "optimizer", "schedule", "epochs",
              "iterations", "batch_size", "crop_size", "ref_size", "grad_clip", "augment", "protocol", "export",
              "train_roles", "checkpoint_every", "validate_every", "stages", "notes", "init_from", "frozen_roles",
              "pairs", "vgg19_init"}
PAIRS_FIELDS = {"type", "perturb", "window", "input"}
AUGMENT_FIELDS = {"hflip", "vflip", "rot90", "transpose", "ref_independent", "swap", "color_jitter", "shuffle_ref",
                  "geometric_from_epoch"}
SCHEDULES = ("constant", "cosine", "step", "multistep")

DEFAULTS: dict[str, Any] = {
    "model_kwargs": {},
    "losses": [{"type": "l1", "weight": 1.0}],
    "optimizer": {"type": "adam", "lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
                  "param_groups": [], "freeze": []},
    "schedule": {"type": "constant", "unit": "step"},
    "batch_size": 9,
    "crop_size": 160,
    "ref_size": None,
    "grad_clip": None,
    "augment": {"hflip": 0.5, "vflip": 0.5, "rot90": 1.0, "ref_independent": True, "swap": 0.0,
                "color_jitter": None, "shuffle_ref": None, "geometric_from_epoch": 0},
    "protocol": "refsr-standard",
    "export": {"wrapper": None},
    "train_roles": None,
    "frozen_roles": None,
    "init_from": None,
    "pairs": None,
    "checkpoint_every": 1000,
    "validate_every": 0,
}


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file and the field."""


@dataclass
class Recipe:
    data: dict
    source_file: str = ""
    overrides: dict = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def roles(self, all_roles: list[str]) -> tuple[list[str], list[str]]:
        """(trained, frozen) roles of a model whose weight files are ``all_roles`` (in the tag's order)."""
        trained = list(self.data["train_roles"] or all_roles[:1])
        frozen = self.data["frozen_roles"]
        return trained, [r for r in all_roles if r not in trained] if frozen is None else list(frozen)

    def total_steps(self, steps_per_epoch: int) -> int:
        if self.data.get("iterations") is not None:
            return int(self.data["iterations"])
        if self.data.get("epochs") is not None:
            return int(self.data["epochs"]) * steps_per_epoch
        raise RecipeError(f"{self.source_file}: give epochs or iterations")


def list_recipes() -> list[str]:
    return sorted(p.name[:-5] for p in RECIPE_DIR.glob("*.yaml"))


def official_recipe_path(model: str) -> Path:
    """``masa.rec`` -> recipes/masa.rec.yaml; an untagged name may also use recipes/<arch>.yaml."""
    path = RECIPE_DIR / f"{model}.yaml"
    if path.is_file():
        return path
    raise RecipeError(f"no official recipe for {model!r} in {RECIPE_DIR} (recipes: {', '.join(list_recipes())}); "
                      f"write one (see benchmark/training/recipe.py) and pass --recipe FILE.yaml")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def load_recipe(model: str, recipe: str | os.PathLike | None = "official", overrides: dict | None = None) -> Recipe:
    """The recipe for ``model``: its official file, or a YAML file; ``overrides`` (dotted keys) on top."""
    path = official_recipe_path(model) if recipe in (None, "official") else Path(recipe)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    raw = load_yaml(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping")
    data = _merge(DEFAULTS, raw)
    for key, value in (overrides or {}).items():  # a list item by its index: losses.1.weight=0
        node = data
        parts = key.split(".")
        try:
            for p in parts[:-1]:
                node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
            node[int(parts[-1]) if isinstance(node, list) else parts[-1]] = value
        except (ValueError, IndexError, TypeError):
            raise RecipeError(f"{path}: cannot set {key!r} (a list item is given by its index)") from None
    if overrides and ("iterations" in overrides):
        data.pop("epochs", None)
    validate(data, str(path))
    return Recipe(data, str(path), dict(overrides or {}))


def validate(data: dict, source: str) -> None:
    unknown = sorted(set(data) - TOP_FIELDS)
    if unknown:
        raise RecipeError(f"{source}: unknown field(s) {unknown}; known: {sorted(TOP_FIELDS)}")
    if "model" not in data:
        raise RecipeError(f"{source}: 'model' (name[.tag]) is required")
    unknown = sorted(set(data["augment"]) - AUGMENT_FIELDS)
    if unknown:
        raise RecipeError(f"{source}: unknown augment field(s) {unknown}; known: {sorted(AUGMENT_FIELDS)}")
    pairs = data.get("pairs")
    if pairs is not None:
        unknown = sorted(set(pairs) - PAIRS_FIELDS)
        kind, first = pairs.get("type", "homography"), pairs.get("input", "hr")
        if unknown or kind != "homography" or first not in ("hr", "lr_up"):
            raise RecipeError(f"{source}: pairs takes type: homography, perturb: [lo, hi], window, input: hr | lr_up; "
                              f"got {pairs}")
    for loss in data["losses"]:
        t = loss.get("type")
        if t not in LOSSES_KNOWN:
            raise RecipeError(f"{source}: unknown loss {t!r}; known: {LOSSES_KNOWN}")
        if t not in LOSSES.list():
            raise RecipeError(f"{source}: loss {t!r} is part of the authors' recipe but not implemented by "
                              f"benchmark.train yet (implemented: {', '.join(LOSSES.list())})")
    if data["optimizer"].get("type", "adam") != "adam":
        raise RecipeError(f"{source}: optimizer.type {data['optimizer'].get('type')!r}: only adam is implemented")
    if data["schedule"].get("type", "constant") not in SCHEDULES:
        raise RecipeError(f"{source}: schedule.type must be one of {SCHEDULES}")
    for loss in data["losses"]:  # a discriminator's own schedule
        own = loss.get("scheduled")
        if isinstance(own, dict) and own.get("type", "constant") not in SCHEDULES:
            raise RecipeError(f"{source}: losses: {loss['type']}.scheduled.type must be one of {SCHEDULES}")
    if data.get("iterations") is None and data.get("epochs") is None:
        raise RecipeError(f"{source}: give epochs or iterations")
    for key in ("batch_size", "crop_size", "checkpoint_every"):
        if not isinstance(data[key], int) or data[key] <= 0:
            raise RecipeError(f"{source}: {key} must be a positive integer, got {data[key]!r}")
