"""LR images for built datasets, by a declared kernel (recorded in the manifest and spec)."""
from __future__ import annotations

import numpy as np

from core.resize import imresize, pil_bicubic

KERNELS = ("pil-bicubic", "matlab-bicubic")


def make_lr(hr: np.ndarray, scale: int, kernel: str = "pil-bicubic") -> np.ndarray:
    """Downscale a uint8 RGB HR whose sides are multiples of ``scale``.

    ``pil-bicubic`` is PIL's bicubic (the RefSR literature's LR); ``matlab-bicubic`` is MATLAB's
    antialiased ``imresize`` (``core.resize``).
    """
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"HR {w}x{h} is not a multiple of the scale {scale}; mod_crop it first")
    if kernel == "pil-bicubic":
        return pil_bicubic(hr, (h // scale, w // scale))
    if kernel == "matlab-bicubic":
        return imresize(hr, scale=1.0 / scale)   # uint8 in, uint8 out, as MATLAB does
    raise ValueError(f"unknown LR kernel {kernel!r}; choose one of {KERNELS}")
