"""The one model interface: ``forward(lr, ref) -> sr`` on RGB tensors in [0, 1].

Every model in the zoo subclasses :class:`RefSRModel` and declares a :class:`ModelSpec`.
Model-specific pre-processing (BGR order, [-1, 1] range, upsampled inputs) stays inside the
model; size and padding policy is applied once by the harness from the spec.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class CheckpointFile:
    """One official weight file: its name under ``$REFSR_WEIGHTS/<model>/`` and its origin."""

    filename: str
    url: str = ""  # where the authors publish it (documentation only; never fetched)
    role: str = "net"  # which sub-network it loads into (e.g. "net_g", "extractor")
    sha256: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """Metadata the harness, the registry and the docs need about a model."""

    name: str
    scale: int = 4
    lr_multiple: int = 1  # LR height/width must be a multiple of this (harness pads)
    ref_multiple: int = 1  # reference height/width must be a multiple of this
    max_ref_side: int | None = None  # harness downsizes longer references
    num_refs: int = 1
    uses_ref: bool = True
    paper: str = ""
    official_repo: str = ""
    official_commit: str = ""
    licence: str = ""
    checkpoints: tuple[CheckpointFile, ...] = ()
    test_kwargs: dict[str, Any] = field(default_factory=dict)  # tiny config for unit tests
    notes: str = ""


class RefSRModel(nn.Module):
    """Base class: subclasses implement :meth:`forward` and set ``spec``."""

    spec: ModelSpec

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Super-resolve ``lr`` (B,3,h,w) with ``ref`` (B,3,H,W); return (B,3,s*h,s*w) in [0,1]."""
        raise NotImplementedError

    def load_official(self, files: dict[str, str]) -> None:
        """Load official checkpoint files, keyed by :attr:`CheckpointFile.role`.

        The default handles a single ``net`` file through :func:`models.checkpoint.load_into`.
        Models with several sub-networks or key renames override this.
        """
        from .checkpoint import load_into

        if set(files) != {"net"}:
            raise ValueError(f"{self.spec.name}: expected one 'net' checkpoint, got roles {sorted(files)}")
        load_into(self, files["net"], rename=getattr(self, "checkpoint_rename", None))
