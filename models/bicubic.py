"""Bicubic upsampling: the single-image floor every RefSR model must beat. Ignores the reference.

The default kernel is MATLAB's ``imresize`` bicubic (what the SISR/RefSR literature's "Bicubic" rows
use); ``kernel="torch"`` gives ``F.interpolate`` bicubic (a = -0.75, no antialiasing) instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from core.resize import imresize_tensor

from .base import MemoryCost, ModelSpec, RefSRModel
from .registry import register_model

SPEC = ModelSpec(name="bicubic", scale=4, uses_ref=False, batchable=True, paper="(SISR baseline)", licence="MIT",
                 memory=MemoryCost(base_mib=11, per_lr_px=467, per_ref_px=1),  # memory_zoo.py --fit
                 notes="MATLAB-style bicubic x4 (imresize), clamped to [0,1]")


class Bicubic(RefSRModel):
    def __init__(self, scale: int = 4, kernel: str = "matlab"):
        super().__init__()
        if kernel not in ("matlab", "torch"):
            raise ValueError(f"kernel must be 'matlab' or 'torch', got {kernel!r}")
        self.scale, self.kernel = scale, kernel

    def forward(self, lr: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        if self.kernel == "torch":
            sr = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        else:
            sr = imresize_tensor(lr, self.scale)
        return sr.clamp(0, 1)


@register_model(SPEC)
def bicubic(**kwargs) -> Bicubic:
    return Bicubic(**kwargs)
