"""``stitch:K``: several references stitched into one image (the MASA/TTSR multi-reference test).

The stitched image holds the sample's own reference followed by the other references of its group
in level order (``VariantInput.refs``), K in all (fewer when the group has fewer; the count used is
recorded). As in MASA's multi-reference loader, each reference is replicate-padded around its
centre to a common tile (here the largest height and width among them) and the tiles are stacked
vertically.
"""
from __future__ import annotations

import cv2
import numpy as np

from . import register_variant
from ._base import Variant, require_ref


def pad_centre(img: np.ndarray, height: int, width: int) -> np.ndarray:
    dh, dw = height - img.shape[0], width - img.shape[1]
    return cv2.copyMakeBorder(img, dh // 2, dh - dh // 2, dw // 2, dw - dw // 2, cv2.BORDER_REPLICATE)


class Stitch(Variant):
    uses_group_refs = True

    def __init__(self, k: int):
        if k < 1:
            raise ValueError(f"stitch needs K >= 1, got {k}")
        self.k = k
        self.name = f"stitch:{k}"
        self.params = {"k": k, "layout": "vertical", "pad": "replicate-centre"}

    def transform(self, inp, rng):
        refs = [require_ref(inp), *inp.refs][:self.k]
        height = max(r.shape[0] for r in refs)
        width = max(r.shape[1] for r in refs)
        out = np.concatenate([pad_centre(r, height, width) for r in refs], axis=0)
        return out, {"k_used": len(refs), "tile": [height, width]}


@register_variant("stitch", "stitch:K", example="stitch:3")
def make(arg: str | None) -> Variant:
    if not arg or not arg.isdigit():
        raise ValueError(f"stitch needs the number of references: stitch:K, got {arg!r}")
    return Stitch(int(arg))
