"""LR images for built datasets, by a declared kernel (recorded in the manifest and spec)."""
from __future__ import annotations

import numpy as np
from PIL import Image

KERNELS = ("pil-bicubic", "matlab-bicubic")


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Top-left crop to a multiple of ``scale`` (the RefSR convention)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def make_lr(hr: np.ndarray, scale: int, kernel: str = "pil-bicubic") -> np.ndarray:
    """Downscale a uint8 RGB HR whose sides are multiples of ``scale``.

    ``pil-bicubic`` is PIL's bicubic (the RefSR literature's LR); ``matlab-bicubic`` is MATLAB's
    antialiased ``imresize`` (``benchmark.resize``).
    """
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"HR {w}x{h} is not a multiple of the scale {scale}; mod_crop it first")
    if kernel == "pil-bicubic":
        return np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.BICUBIC))
    if kernel == "matlab-bicubic":
        from benchmark.resize import imresize   # imported here: it pulls in torch

        return imresize(hr, scale=1.0 / scale)   # uint8 in, uint8 out, as MATLAB does
    raise ValueError(f"unknown LR kernel {kernel!r}; choose one of {KERNELS}")
