"""Bicubic upsampling: the single-image floor every RefSR model must beat. Ignores the reference."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ModelSpec, RefSRModel
from .registry import register_model

SPEC = ModelSpec(name="bicubic", scale=4, uses_ref=False, paper="(baseline)", licence="MIT",
                 notes="torch bicubic (a=-0.75, no antialias) x4, clamped to [0,1]")


class Bicubic(RefSRModel):
    def __init__(self, scale: int = 4):
        super().__init__()
        self.scale = scale

    def forward(self, lr: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        return F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp(0, 1)


@register_model(SPEC)
def bicubic(**kwargs) -> Bicubic:
    return Bicubic(**kwargs)
