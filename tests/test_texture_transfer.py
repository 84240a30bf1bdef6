"""Training-free texture transfer: shape, fall-back on a useless reference, gain on a matched one, chunking."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.registry import create_model, get_spec
from models.texture_transfer import _descriptors, _down, _up, coarse_topk


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / F.mse_loss(a, b)))


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A 112x144 natural crop (scikit-image ships the astronaut photo in its wheel)."""
    from skimage.data import astronaut

    img = torch.from_numpy(np.ascontiguousarray(astronaut()[40:152, 150:294])).permute(2, 0, 1)[None]
    return img.float() / 255


def _lr(hr: torch.Tensor) -> torch.Tensor:
    return (_down(hr, 4) * 255).round().clamp(0, 255) / 255


def test_spec_says_it_is_ours():
    spec = get_spec("texture_transfer")
    assert spec.uses_ref and "ours" in spec.paper and not spec.tags


def test_tiny_forward_shape_and_range():
    torch.manual_seed(0)
    model = create_model("texture_transfer", **get_spec("texture_transfer").test_kwargs)
    lr, ref = torch.rand(2, 3, 9, 11), torch.rand(2, 3, 40, 36)
    sr = model(lr, ref)
    assert sr.shape == (2, 3, 36, 44)
    assert torch.isfinite(sr).all() and sr.min() >= 0 and sr.max() <= 1


def test_noise_reference_falls_back_to_bicubic_back_projection(photo):
    model = create_model("texture_transfer", ref_scales=(1.0,), ref_angles=())
    lr = _lr(photo)
    noise = torch.rand(1, 3, 120, 120, generator=torch.Generator().manual_seed(1))
    sr = model(lr, noise)
    fallback = model.back_project(_up(lr, 4), lr).clamp(0, 1)
    assert model.transferred_detail(lr, noise).abs().max() < 0.02
    assert _psnr(sr, fallback) > 50
    assert _psnr(sr, photo) > _psnr(_up(lr, 4).clamp(0, 1), photo)  # never below bicubic here


def test_matched_reference_beats_bicubic(photo):
    model = create_model("texture_transfer", ref_scales=(1.0,), ref_angles=())
    lr = _lr(photo)
    ref = photo[..., 5:, 7:]  # the HR itself, shifted by a non-multiple of the scale
    sr = model(lr, ref)
    bicubic = _up(lr, 4).clamp(0, 1)
    fallback = model.back_project(_up(lr, 4), lr).clamp(0, 1)
    assert _psnr(sr, photo) > _psnr(bicubic, photo) + 3
    assert _psnr(sr, photo) > _psnr(fallback, photo) + 2


def test_chunked_matching_equals_unchunked(photo):
    lr = _lr(photo)
    q = _descriptors(lr, 5)[0]
    cand = _descriptors(_lr(photo[..., 3:, 2:]), 5)[0]
    assert torch.equal(coarse_topk(q, cand, 3, chunk=37), coarse_topk(q, cand, 3, chunk=10**6))
    ref = photo[..., 3:, 2:]
    kw = dict(ref_scales=(1.0,), ref_angles=(15.0,))
    small = create_model("texture_transfer", chunk=41, **kw)(lr, ref)
    big = create_model("texture_transfer", chunk=10**6, **kw)(lr, ref)
    assert torch.allclose(small, big, atol=1e-5)


def test_rotated_reference_needs_rotation_augmentation(photo):
    from scipy.ndimage import rotate

    lr = _lr(photo)
    turned = rotate(photo[0].permute(1, 2, 0).numpy(), 15, reshape=True, order=3, mode="reflect")
    ref = torch.from_numpy(np.clip(turned, 0, 1)).permute(2, 0, 1)[None].float()
    plain = create_model("texture_transfer", ref_scales=(1.0,), ref_angles=())(lr, ref)
    turning = create_model("texture_transfer", ref_scales=(1.0,), ref_angles=(-15.0, 15.0))(lr, ref)
    assert _psnr(turning, photo) > _psnr(plain, photo) + 1
