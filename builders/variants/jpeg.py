"""``jpeg:Q``: the reference re-encoded as a JPEG of quality Q (default 30), as references found on
the web or in photo albums often are. Baseline JPEG with 4:2:0 chroma subsampling, encoded and
decoded by Pillow's libjpeg; nothing is drawn, so the result depends only on the reference and Q.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from . import register_variant
from ._base import Variant, require_ref

DEFAULT_QUALITY = 30


class JpegReference(Variant):
    def __init__(self, quality: int):
        self.quality = quality
        self.name = f"jpeg:{quality}"
        self.params = {"quality": quality, "subsampling": "4:2:0"}

    def transform(self, inp, rng):
        buf = io.BytesIO()
        Image.fromarray(require_ref(inp)).save(buf, format="JPEG", quality=self.quality, subsampling=2)
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        return np.ascontiguousarray(out), {"jpeg_bytes": buf.tell()}


@register_variant("jpeg", "jpeg[:Q] (quality 1-95, default 30)", example="jpeg:20")
def make(arg: str | None) -> Variant:
    try:
        quality = int(arg) if arg else DEFAULT_QUALITY
    except ValueError:
        raise ValueError(f"jpeg takes a quality 1-95, got {arg!r}") from None
    if not 1 <= quality <= 95:
        raise ValueError(f"jpeg quality must be in 1..95, got {quality}")
    return JpegReference(quality)
