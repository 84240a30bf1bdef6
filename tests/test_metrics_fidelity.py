"""PSNR / SSIM: independent float64 formulas (scipy.ndimage) and the published calibration scores."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from benchmark.metrics import create_metric
from benchmark.metrics.fidelity import psnr, ssim


def scipy_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2003 written out: 2-D Gaussian window from its formula, statistics by
    correlation, only positions where the whole window fits the image."""
    r = np.arange(-5, 6)
    win = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5 ** 2))
    win /= win.sum()

    def filt(x):
        return ndimage.correlate(x, win, mode="constant")[5:-5, 5:-5]

    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = filt(a), filt(b)
    s_aa, s_bb, s_ab = filt(a * a) - mu_a ** 2, filt(b * b) - mu_b ** 2, filt(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (s_aa + s_bb + c2))
    return float(m.mean())


def test_ssim_and_psnr_match_independent_formulas():
    rng = np.random.default_rng(0)
    hr = ndimage.gaussian_filter(rng.random((2, 40, 52)) * 255, 2)
    sr = hr + rng.normal(0, 6, hr.shape)
    ours = ssim(torch.tensor(sr)[:, None], torch.tensor(hr)[:, None]).numpy()
    for i in range(2):
        assert ours[i] == pytest.approx(scipy_ssim(sr[i], hr[i]), abs=1e-10)
        mse = np.mean((sr[i] - hr[i]) ** 2)
        assert psnr(torch.tensor(sr[i])[None, None], torch.tensor(hr[i])[None, None]).item() == \
            pytest.approx(10 * np.log10(255 ** 2 / mse), abs=1e-10)
    same = torch.tensor(hr)[:, None]
    assert torch.all(ssim(same, same) == 1) and torch.all(torch.isinf(psnr(same, same)))


def test_ssim_rejects_images_smaller_than_the_window():
    x = torch.zeros(1, 1, 10, 30)
    with pytest.raises(ValueError, match="at least"):
        ssim(x, x)
    with pytest.raises(ValueError, match="odd"):
        create_metric("ssim_y", window=10)


def _gray(img: np.ndarray) -> torch.Tensor:
    """MATLAB rgb2gray on uint8: weighted sum rounded back to uint8."""
    g = np.floor(img.astype(np.float64) @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103]) + 0.5)
    return torch.tensor(g)[None, None]


def test_calibration_psnr_and_ssim_columns(shared_data):
    """expected.csv's RGB PSNR (2 decimals) and MATLAB SSIM on rgb2gray images (4 decimals)."""
    folder = shared_data / "iqa_calibration"
    rows = [r for r in csv.DictReader(open(folder / "expected.csv"))
            if r["metric"] in ("psnr_rgb", "ssim_matlab_rgb2gray")]
    assert len(rows) == 10
    psnr_rgb, ssim_y = create_metric("psnr_rgb", device="cpu"), create_metric("ssim_y", device="cpu")
    for row in rows:
        ref = np.asarray(Image.open(folder / "ref" / f"{row['image']}.png").convert("RGB"))
        dist = np.asarray(Image.open(folder / "dist" / f"{row['image']}.png").convert("RGB"))
        if row["metric"] == "psnr_rgb":
            value = psnr_rgb(torch.tensor(dist).permute(2, 0, 1)[None].double(),
                             torch.tensor(ref).permute(2, 0, 1)[None].double()).item()
            assert round(value, 2) == pytest.approx(float(row["official"]), abs=1e-9), row
        else:
            value = ssim_y(_gray(dist), _gray(ref)).item()
            assert round(value, 4) == pytest.approx(float(row["official"]), abs=1e-9), row


def test_cpu_separable_blur_equals_the_convolution():
    """OpenCV's float64 separable filter (CPU path) gives the valid-window convolution's values."""
    import torch.nn.functional as F

    from benchmark.metrics.fidelity import _blur, gaussian_window

    g = gaussian_window(11, 1.5)
    x = torch.rand(3, 1, 40, 57, dtype=torch.float64) * 255
    want = F.conv2d(F.conv2d(x, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))
    got = _blur(x, g)
    assert got.shape == want.shape == (3, 1, 30, 47)
    assert (got - want).abs().max().item() <= 1e-10
