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
    antialiased ``imresize`` as implemented in ``benchmark.resize``.
    """
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"HR {w}x{h} is not a multiple of the scale {scale}; mod_crop it first")
    if kernel == "pil-bicubic":
        return np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.BICUBIC))
    if kernel == "matlab-bicubic":
        try:
            from benchmark.resize import imresize
        except ImportError as e:
            raise RuntimeError("lr kernel 'matlab-bicubic' needs benchmark.resize.imresize, "
                               f"which is not available here ({e}); use 'pil-bicubic'") from e
        out = imresize(hr.astype(np.float64), 1.0 / scale)
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    raise ValueError(f"unknown LR kernel {kernel!r}; choose one of {KERNELS}")
