"""``warp``: SRNTT's "HR (warp)" reference, the HR itself randomly translated (a quarter to half of
the width/height), rotated (10–30°) and upscaled (1.2–2.0×) — the easiest possible reference.

Directions (sign of each shift and of the angle) are drawn uniformly. The similarity transform is
about the image centre, resampled bicubically at HR size; uncovered areas are filled by reflection
(the paper does not say; black fill would add edges no real reference has).
"""
from __future__ import annotations

import cv2

from . import register_variant
from ._base import Variant, sign, uniform

SHIFT = (0.25, 0.5)
ANGLE = (10.0, 30.0)
ZOOM = (1.2, 2.0)


class Warp(Variant):
    name = "warp"

    def __init__(self):
        self.params = {"shift_range": list(SHIFT), "angle_range": list(ANGLE), "zoom_range": list(ZOOM),
                       "interpolation": "bicubic", "border": "reflect101"}

    def transform(self, inp, rng):
        hr = inp.hr
        height, width = hr.shape[:2]
        fx = sign(rng) * uniform(rng, *SHIFT)
        fy = sign(rng) * uniform(rng, *SHIFT)
        angle = sign(rng) * uniform(rng, *ANGLE)
        zoom = uniform(rng, *ZOOM)
        m = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), angle, zoom)
        m[0, 2] += fx * width
        m[1, 2] += fy * height
        out = cv2.warpAffine(hr, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
        record = {"shift_frac": [fx, fy], "shift_px": [round(fx * width, 6), round(fy * height, 6)],
                  "angle_deg": angle, "zoom": zoom}
        return out, record


@register_variant("warp", "warp")
def make(arg: str | None) -> Variant:
    if arg:
        raise ValueError(f"warp takes no argument, got {arg!r}")
    return Warp()
