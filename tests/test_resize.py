"""MATLAB-style imresize and PIL bicubic: against an independent float64 reference and known values."""
from __future__ import annotations

import math

import numpy as np
import pytest

import torch

from core.resize import imresize, imresize_tensor, pil_bicubic


def keys_cubic(t: float) -> float:
    t = abs(t)
    if t <= 1:
        return 1.5 * t ** 3 - 2.5 * t ** 2 + 1
    if t <= 2:
        return -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2
    return 0.0


def reference_resize_1d(signal: np.ndarray, out_len: int, scale: float) -> np.ndarray:
    """Per-pixel loop over 0-based centres: out[i] samples c = (i + 0.5) / scale - 0.5; a shrink
    stretches the kernel by 1/scale; taps outside [0, n) reflect about the edge (half-sample)."""
    n = len(signal)
    stretch = min(scale, 1.0)
    radius = 2.0 / stretch
    out = np.empty(out_len)
    for i in range(out_len):
        c = (i + 0.5) / scale - 0.5
        total, norm = 0.0, 0.0
        for j in range(math.floor(c - radius) - 1, math.ceil(c + radius) + 2):
            wgt = keys_cubic((c - j) * stretch)
            k = j % (2 * n)
            k = k if k < n else 2 * n - 1 - k
            total += wgt * signal[k]
            norm += wgt
        out[i] = total / norm
    return out


def reference_imresize(img: np.ndarray, scale: float, quantise: bool) -> np.ndarray:
    out = img.astype(np.float64)
    for axis in (0, 1):
        n_out = math.ceil(out.shape[axis] * scale)
        out = np.apply_along_axis(reference_resize_1d, axis, out, n_out, scale)
        if quantise:
            out = np.clip(np.floor(out + 0.5), 0, 255)
    return out


@pytest.mark.parametrize("shape,scale", [((13, 11), 0.25), ((9, 7), 4), ((15, 17), 1 / 3), ((10, 6), 0.5),
                                         ((7, 9), 2)])
def test_float_matches_independent_reference(shape, scale):
    img = np.random.default_rng(1).random(shape) * 255
    ours = imresize(img, scale)
    ref = reference_imresize(img, scale, quantise=False)
    assert ours.shape == ref.shape == (math.ceil(shape[0] * scale), math.ceil(shape[1] * scale))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("scale", [0.25, 4])
def test_uint8_rounds_every_pass_like_matlab(scale):
    img = np.random.default_rng(2).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    ours = imresize(img, scale)
    assert ours.dtype == np.uint8
    ref = np.stack([reference_imresize(img[..., c], scale, quantise=True) for c in range(3)], axis=-1)
    np.testing.assert_array_equal(ours, ref.astype(np.uint8))


def test_known_values_on_a_ramp():
    """The cubic kernel reproduces linear functions: away from the borders a ramp 1..32 sampled at
    MATLAB's output coordinate u = x/s + (1 - 1/s)/2 gives exactly u."""
    ramp = np.tile(np.arange(1, 33, dtype=np.float64), (8, 1))
    down = imresize(ramp, 0.25)[0]
    x = np.arange(1, 9)
    np.testing.assert_allclose(down[2:-2], (4 * x - 1.5)[2:-2], atol=1e-12)
    up = imresize(ramp[:, :8], 4)[0]
    x = np.arange(1, 33)
    np.testing.assert_allclose(up[8:-8], (x / 4 + 0.375)[8:-8], atol=1e-12)
    # the mirrored border pulls the first sample up: MATLAB's imresize(1:32, 1/4) starts at 2.3599
    assert down[0] == pytest.approx(2.35986328125, abs=1e-10)


def test_constant_image_and_sizes():
    img = np.full((10, 14, 3), 77, dtype=np.uint8)
    assert np.all(imresize(img, 0.5) == 77) and imresize(img, 0.5).shape == (5, 7, 3)
    assert imresize(img, size=(3, 4)).shape == (3, 4, 3)
    assert imresize(np.zeros((9, 9)), 1 / 4).shape == (3, 3)  # MATLAB: ceil(9/4)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(img)
    with pytest.raises(TypeError, match="uint8 or float"):
        imresize(img.astype(np.int32), 0.5)


def test_pil_bicubic_is_the_same_kernel_inside_the_image():
    """PIL's bicubic is also Keys a=-0.5 with antialiasing: it differs from MATLAB only at the
    borders (PIL renormalises instead of mirroring) and by 8-bit fixed-point rounding."""
    img = np.random.default_rng(3).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    pil = pil_bicubic(img, (24, 24)).astype(int)
    mat = imresize(img, 0.25).astype(int)
    assert pil.shape == mat.shape == (24, 24, 3)
    assert np.abs(pil - mat)[2:-2, 2:-2].max() <= 1
    assert np.abs(pil - mat)[:, :2].max() > 2  # the border handling really differs
    with pytest.raises(TypeError, match="uint8"):
        pil_bicubic(img.astype(np.float32), (4, 4))


@pytest.mark.parametrize("scale", [0.25, 4])
def test_tensor_version_matches_numpy(scale):
    img = np.random.default_rng(4).random((11, 14, 3))
    ours = imresize_tensor(torch.tensor(img).permute(2, 0, 1)[None], scale)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, imresize(img, scale), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="float"):
        imresize_tensor(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), 2)
