"""``lr``: LR-as-reference, the SISR setting (SRNTT/MASA on Urban100): the reference is the LR
input upsampled back by the scale, so a model can only exploit self-similarity.

The LR is the caller's (``VariantInput.lr``) when given, else the HR cropped top-left to a multiple
of the scale and downscaled with PIL bicubic (the RefSR convention). Upsampling is PIL bicubic to
``scale × LR size`` (= the mod-cropped HR size).
"""
from __future__ import annotations

import numpy as np

from core.resize import pil_bicubic

from . import register_variant
from ._base import Variant, VariantError

KERNEL = "pil-bicubic"


class LRAsRef(Variant):
    name = "lr"

    def __init__(self):
        self.params = {"kernel": KERNEL}

    def transform(self, inp, rng):
        s = inp.scale
        if inp.lr is not None:
            lr, source = inp.lr, "given"
        else:
            h, w = inp.hr.shape[0] // s, inp.hr.shape[1] // s
            if h == 0 or w == 0:
                raise VariantError("too-small", f"HR {inp.hr.shape[:2]} is smaller than the scale {s}")
            lr, source = pil_bicubic(inp.hr[:h * s, :w * s], (h, w)), f"hr-{KERNEL}"
        out = pil_bicubic(lr, (lr.shape[0] * s, lr.shape[1] * s))
        return np.ascontiguousarray(out), {"lr_source": source, "lr_size": [lr.shape[0], lr.shape[1]],
                                           "scale": s}


@register_variant("lr", "lr", fallback=True)
def make(arg: str | None) -> Variant:
    if arg:
        raise ValueError(f"lr takes no argument, got {arg!r}")
    return LRAsRef()
