"""The two bicubic resizers the SR literature uses to make LR inputs (and bicubic baselines).

* :func:`pil_bicubic` — PIL ``Image.resize(..., BICUBIC)`` of a uint8 image: the RefSR convention
  (TTSR, MASA-SR, C2-Matching and followers build their LR images this way).
* :func:`imresize` — MATLAB ``imresize(img, scale, 'bicubic')``: Keys cubic kernel with a = -0.5,
  antialiasing when shrinking (the kernel is stretched by 1/scale), symmetric (mirror) boundary
  handling, one dimension at a time, rows first. Like MATLAB, a uint8 input gives uint8 output and
  every pass is rounded (half away from zero) and saturated to uint8; float input stays float64.
  This is the LR kernel of the SISR literature (SRCNN, VDSR, EDSR, RCAN, ... and BasicSR's
  ``imresize``), and MATLAB bicubic upsampling is how their "Bicubic" rows were computed.
* :func:`imresize_tensor` — the same MATLAB resampling for float ``(B, C, H, W)`` tensors on any
  device (no per-pass rounding), e.g. for a bicubic baseline model.
* :func:`pil_bicubic_tensor` — PIL's bicubic of 8-bit images, bit-exact, on ``(B, 3, h, w)``
  tensors in [0, 1] on any device: the models' own preprocessing (TTSR, MASA-SR, C2-Matching and
  SRNTT make their inputs with PIL ``BICUBIC``).
* :func:`mod_crop` — top-left crop to a multiple of the scale (the RefSR convention).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # the tensor functions import torch themselves: builders use the numpy ones only
    import torch


def pil_bicubic(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 ``(H, W)`` or ``(H, W, C)`` image to ``size = (height, width)`` with PIL bicubic."""
    if img.dtype != np.uint8:
        raise TypeError(f"pil_bicubic takes a uint8 image (PIL rounds to 8 bits), got {img.dtype}")
    height, width = size
    return np.asarray(Image.fromarray(img).resize((width, height), Image.BICUBIC))


def cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (Keys, a = -0.5), supported on [-2, 2]."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """The ``(out_len, in_len)`` float64 matrix MATLAB's ``contributions`` applies along one axis.

    Output pixel ``x`` (1-based) samples input coordinate ``u = x / scale + (1 - 1/scale) / 2``;
    when shrinking with antialiasing the kernel is ``scale * cubic(scale * d)`` over a width of
    ``4 / scale``; weights are normalised to sum to one and out-of-range taps are mirrored.
    """
    stretch = scale < 1 and antialias
    width = 4.0 / scale if stretch else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    dist = u[:, None] - idx
    weights = scale * cubic(scale * dist) if stretch else cubic(dist)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_len), taps), cols.ravel()), weights.ravel())
    return matrix


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB's double -> uint8 conversion: round half away from zero, saturate."""
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def imresize(img: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` (or to ``size = (height, width)``).

    ``img`` is ``(H, W)`` or ``(H, W, C)``, uint8 or float. With ``scale`` the output size is
    ``ceil(H * scale) x ceil(W * scale)``, as in MATLAB.
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale or size")
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize takes an (H, W) or (H, W, C) image, got shape {img.shape}")
    in_h, in_w = img.shape[:2]
    if scale is not None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        scales = (float(scale), float(scale))
        out_h, out_w = math.ceil(in_h * scale), math.ceil(in_w * scale)
    else:
        out_h, out_w = size
        scales = (out_h / in_h, out_w / in_w)
    is_uint8 = img.dtype == np.uint8
    if not is_uint8 and not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"imresize takes uint8 or float images, got {img.dtype}")
    out = img.astype(np.float64)
    # MATLAB resizes the dimension with the smaller scale first (rows on ties).
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        in_len, out_len = out.shape[axis], (out_h, out_w)[axis]
        matrix = resize_matrix(in_len, out_len, scales[axis], antialias)
        out = np.moveaxis(np.tensordot(matrix, np.moveaxis(out, axis, 0), axes=(1, 0)), 0, axis)
        if is_uint8:
            out = _to_uint8(out)
    return out if is_uint8 else out.astype(np.float64)


def imresize_tensor(x: torch.Tensor, scale: float, antialias: bool = True) -> torch.Tensor:
    """MATLAB bicubic resize of a float ``(B, C, H, W)`` tensor by ``scale``, on its own device."""
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"imresize_tensor takes a float (B, C, H, W) tensor, got {x.dtype} {tuple(x.shape)}")
    import torch

    h, w = x.shape[-2:]
    rows = torch.from_numpy(resize_matrix(h, math.ceil(h * scale), scale, antialias)).to(x)
    cols = torch.from_numpy(resize_matrix(w, math.ceil(w * scale), scale, antialias)).to(x)
    return rows @ x @ cols.T


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Top-left crop of an ``(H, W[, C])`` image to a multiple of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def pil_bicubic_weights(in_size: int, out_size: int) -> np.ndarray:
    """The ``(out_size, in_size)`` float64 weights of PIL's BICUBIC (a = -0.5) along one axis,
    before PIL rounds them to 22-bit fixed point: output pixel ``i`` centred at ``(i + 0.5) * in/out``,
    kernel stretched by ``max(in/out, 1)``, taps clipped to the image, weights divided by their sum."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    mat = np.zeros((out_size, in_size), dtype=np.float64)

    def cubic(x: float) -> float:
        x = abs(x)
        if x < 1.0:
            return (1.5 * x - 2.5) * x * x + 1.0
        if x < 2.0:
            return ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
        return 0.0

    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        ws = [cubic((x - center + 0.5) / filterscale) for x in range(xmin, xmax)]
        total = sum(ws)
        mat[xx, xmin:xmax] = [w / total for w in ws]
    return mat


def _pil_bicubic_coeffs(in_size: int, out_size: int) -> torch.Tensor:
    """PIL's fixed-point (22-bit) bicubic resampling matrix (out_size, in_size), float64."""
    import torch

    v = pil_bicubic_weights(in_size, out_size) * (1 << 22)
    return torch.from_numpy(np.where(v >= 0, np.floor(v + 0.5), np.ceil(v - 0.5)))


def pil_bicubic_tensor(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``PIL.Image.resize(size, BICUBIC)`` of 8-bit RGB, bit-exact, on (B,3,h,w) tensors in [0,1].

    The input is rounded to 8 bits; PIL resamples horizontally, stores 8 bits, then vertically.
    """
    out_h, out_w = size
    x = (img.clamp(0, 1) * 255).round().double()
    one = float(1 << 21)

    def apply(t: torch.Tensor, mat: torch.Tensor) -> torch.Tensor:
        return (t @ mat.t().to(t.device) + one).div(1 << 22).floor().clamp(0, 255)

    if out_w != x.shape[-1]:
        x = apply(x, _pil_bicubic_coeffs(x.shape[-1], out_w))
    if out_h != x.shape[-2]:
        x = apply(x.transpose(-1, -2), _pil_bicubic_coeffs(x.shape[-2], out_h)).transpose(-1, -2)
    return (x / 255).to(img.dtype)
