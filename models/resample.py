"""PIL's bicubic resize of 8-bit images, bit-exact, in torch: the preprocessing of the official
RefSR data pipelines (TTSR, MASA-SR, C2-Matching, SRNTT all make their inputs with PIL ``BICUBIC``).
One implementation for every model, on any device and batched.
"""
from __future__ import annotations

import math

import torch


def _pil_bicubic_coeffs(in_size: int, out_size: int) -> torch.Tensor:
    """PIL's fixed-point (22-bit) bicubic (a=-0.5) resampling matrix (out_size, in_size), float64."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    mat = torch.zeros(out_size, in_size, dtype=torch.float64)

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
        for x, wgt in zip(range(xmin, xmax), ws):
            v = wgt / total * (1 << 22)
            mat[xx, x] = math.floor(v + 0.5) if v >= 0 else math.ceil(v - 0.5)
    return mat


def pil_bicubic_resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``PIL.Image.resize(size, BICUBIC)`` of 8-bit RGB, bit-exact, on (B,3,h,w) tensors in [0,1].

    The input is rounded to 8 bits; PIL resamples horizontally, stores 8 bits, then vertically.
    """
    out_h, out_w = size
    x = (img.clamp(0, 1) * 255).round().double()
    one = float(1 << 21)

    def apply(t: torch.Tensor, mat: torch.Tensor) -> torch.Tensor:
        return torch.floor((t @ mat.t().to(t.device) + one) / (1 << 22)).clamp(0, 255)

    if out_w != x.shape[-1]:
        x = apply(x, _pil_bicubic_coeffs(x.shape[-1], out_w))
    if out_h != x.shape[-2]:
        x = apply(x.transpose(-1, -2), _pil_bicubic_coeffs(x.shape[-2], out_h)).transpose(-1, -2)
    return (x / 255).to(img.dtype)
