"""What the harness, the registry and the docs know about a model, importable without torch.

:class:`ModelSpec` (with its :class:`WeightTag` sets of :class:`CheckpointFile`) is declared in each
model file; the model registry's index keeps it as a plain dict (:meth:`ModelSpec.from_dict`) so
``--list-models`` and ``--help`` need not import the model.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckpointFile:
    """One official weight file: its name under ``$REFSR_WEIGHTS/<model>/``, role and origin."""

    filename: str
    role: str = "net"  # which sub-network it loads into (a key of checkpoint_modules())
    url: str = ""  # where the authors publish it ("" = not published)
    sha256: str = ""  # the official file's hash when known; else recorded on first use
    download: str = ""  # a direct link to the file (or a Google Drive link) when ``url`` is a page


@dataclass(frozen=True)
class WeightTag:
    """A named set of weight files for one architecture (``""`` is the model's default set)."""

    name: str
    files: tuple[CheckpointFile, ...]
    description: str = ""


@dataclass(frozen=True)
class MemoryCost:
    """Extra memory of one forward, linear in the input sizes: ``base + a*LR px + b*Ref px + c*LR px*Ref px``
    (bytes; the product term is for models holding a full LR x reference correlation). Fitted to
    forwards measured on the CPU by ``scripts/memory_zoo.py --fit``, so the harness can refuse an input
    before allocating it rather than be killed for running out of memory."""

    base_mib: float = 0.0
    per_lr_px: float = 0.0
    per_ref_px: float = 0.0
    per_lr_ref_px: float = 0.0

    def estimate(self, lr_hw: tuple[int, int], ref_hw: tuple[int, int]) -> float:
        """Bytes one forward on a batch of one is expected to allocate on top of what is resident."""
        lr, ref = lr_hw[0] * lr_hw[1], ref_hw[0] * ref_hw[1]
        return self.base_mib * 2 ** 20 + self.per_lr_px * lr + self.per_ref_px * ref + self.per_lr_ref_px * lr * ref


@dataclass(frozen=True)
class ModelSpec:
    """Metadata the harness, the registry and the docs need about a model."""

    name: str
    scale: int = 4
    lr_multiple: int = 1  # LR height/width must be a multiple of this (harness pads)
    ref_multiple: int = 1  # reference height/width must be a multiple of this
    #: longest reference side the model is run on (what its forward affords on 8 GiB at WR-SR sizes);
    #: a longer reference is downsized by the harness (``oversize_ref="resize"``, noted in its rows)
    #: or the image is a failed row (``"fail"``)
    max_ref_side: int | None = None
    oversize_ref: str = "resize"
    memory: MemoryCost | None = None  # the forward's cost model, for the harness's memory guard
    num_refs: int = 1
    uses_ref: bool = True
    batchable: bool = False  # each batch item is computed on its own: a batch of same-size inputs gives batch-1 results
    paper: str = ""
    official_repo: str = ""
    official_commit: str = ""
    licence: str = ""
    tags: tuple[WeightTag, ...] = ()  # first = default; empty for parameter-free models
    test_kwargs: dict[str, Any] = field(default_factory=dict)  # tiny config for unit tests
    notes: str = ""

    def __post_init__(self):
        if self.oversize_ref not in ("resize", "fail"):
            raise ValueError(f"{self.name}: oversize_ref must be 'resize' or 'fail', got {self.oversize_ref!r}")

    def tag(self, name: str = "") -> WeightTag | None:
        """The weight set called ``name`` ("" = default); None for a model without weights."""
        if not self.tags:
            if name:
                raise KeyError(f"{self.name} has no weight tags (it needs no learned weights)")
            return None
        for t in self.tags:
            if t.name == name:
                return t
        raise KeyError(f"{self.name} has no weight tag {name!r}; tags: {', '.join(self.tag_names())}")

    def tag_names(self) -> list[str]:
        """Full names of every weight set: ``ttsr``, ``ttsr.rec``, ..."""
        return [self.name + (f".{t.name}" if t.name else "") for t in self.tags] or [self.name]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        """The inverse of :meth:`as_dict` (the registry index stores specs this way)."""
        tags = tuple(WeightTag(t["name"], tuple(CheckpointFile(**f) for f in t["files"]), t["description"])
                     for t in d["tags"])
        memory = MemoryCost(**d["memory"]) if d.get("memory") is not None else None
        return cls(**{**d, "tags": tags, "memory": memory})
