"""``luma``: a luminance (``luma``) or colour (``luma:colour``) shift of the reference (MASA-SR).

MASA's robustness test changes the reference's luminance without stating the amount; the ranges
here are the ones its training code draws (``cv2.convertScaleAbs`` with gain ∈ [0.7, 1.3] and
offset ∈ [-20, 20] on 0–255). ``luma`` applies one gain/offset to all channels; ``luma:colour``
draws one per channel, which also shifts the colour balance. Values saturate to [0, 255] (MASA's
``convertScaleAbs`` would fold negative values back up instead).
"""
from __future__ import annotations

import numpy as np

from . import register_variant
from ._base import Variant, require_ref, uniform

GAIN = (0.7, 1.3)
OFFSET = (-20.0, 20.0)


class Luma(Variant):
    def __init__(self, per_channel: bool):
        self.per_channel = per_channel
        self.name = "luma:colour" if per_channel else "luma"
        self.params = {"mode": "colour" if per_channel else "luma", "gain_range": list(GAIN),
                       "offset_range": list(OFFSET)}

    def transform(self, inp, rng):
        ref = require_ref(inp)
        k = 3 if self.per_channel else 1
        gain = [uniform(rng, *GAIN) for _ in range(k)]
        offset = [uniform(rng, *OFFSET) for _ in range(k)]
        out = ref.astype(np.float64) * np.array(gain) + np.array(offset)
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return out, {"gain": gain, "offset": offset}


@register_variant("luma", "luma[:colour]")
def make(arg: str | None) -> Variant:
    if arg not in (None, "colour", "color"):
        raise ValueError(f"luma takes no argument or 'colour', got {arg!r}")
    return Luma(per_channel=arg is not None)
