"""Memory-bounded forms of the C2-Matching family's big ops equal the whole-tensor forms (<= 1e-5)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from models.c2_matching_parts import (DynamicAggregation, deform_conv2d_by_group, deform_conv2d_sampled,
                                      offset_and_mask)
from models.datsr_parts import SimilarityDynAgg, SwinTransformerBlock, from_windows, shifted_window_mask, to_windows

pytestmark = pytest.mark.usefixtures("one_thread")


def _dcn_inputs(c=16, groups=4, h=11, w=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c, h, w, generator=g)
    offset = 3 * torch.randn(2, 2 * 9 * groups, h, w, generator=g)  # reaches past the border too
    mask = torch.rand(2, 9 * groups, h, w, generator=g)
    weight, bias = torch.randn(7, c, 3, 3, generator=g), torch.randn(7, generator=g)
    return x, offset, weight, bias, mask


@pytest.mark.parametrize("groups", [1, 4])
def test_deform_conv_by_group_equals_one_call(groups):
    x, offset, weight, bias, mask = _dcn_inputs(groups=groups)
    want = deform_conv2d(x, offset, weight, bias, padding=(1, 1), mask=mask)
    got = deform_conv2d_by_group(x, offset, weight, bias, mask, groups)
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()


@pytest.mark.parametrize("groups, dtype, tol", [(1, torch.float64, 1e-10), (4, torch.float64, 1e-10),
                                                 (4, torch.float32, 2e-5)])
def test_sampled_deform_conv_equals_torchvision_values_and_gradients(groups, dtype, tol):
    """The training form (grid_sample + matmul) = torchvision's kernel: output and the gradients of input,
    offsets (past the border too), mask, weight and bias; and training on CPU picks it."""
    ins = [t.to(dtype) for t in _dcn_inputs(groups=groups)]
    w = torch.randn(2, 7, 11, 13, generator=torch.Generator().manual_seed(3), dtype=dtype)
    grads = []
    for fn in (lambda x, o, wt, b, m: deform_conv2d(x, o, wt, b, padding=(1, 1), mask=m),
               lambda *a: deform_conv2d_sampled(*a, groups), lambda *a: deform_conv2d_by_group(*a, groups)):
        ts = [t.clone().requires_grad_() for t in ins]
        out = fn(*ts)
        (out * w).sum().backward()
        grads.append([out.detach()] + [t.grad for t in ts])
    for want, got, picked in zip(*grads):
        assert (got - want).abs().max() <= tol * want.abs().max()
        assert torch.equal(got, picked)  # deform_conv2d_by_group ran the sampled form


def _pre_offset_and_conv(groups, seed=1):
    g = torch.Generator().manual_seed(seed)
    pre = 2 * torch.randn(2, 9, 11, 13, 2, generator=g)
    om = torch.randn(2, 27 * groups, 11, 13, generator=g)
    # the official layout: [x, y] flow -> [y0, x0, y1, x1, ...], repeated for every group
    flat = pre.flip(-1).permute(0, 1, 4, 2, 3).reshape(2, 18, 11, 13).repeat(1, groups, 1, 1)
    return pre, om, flat


def test_offset_and_mask_equals_repeat_form():
    pre, om, flat = _pre_offset_and_conv(4)
    o1, o2, m = torch.chunk(om, 3, 1)
    offset, mask = offset_and_mask(om, pre, 4)
    assert torch.equal(offset, torch.cat((o1, o2), 1) + flat)
    assert torch.equal(mask, torch.sigmoid(m))


def _identity_offset_conv(mod):
    """``mod.conv_offset_mask`` passes its input through: the test gives the offset/mask logits."""
    mod.conv_offset_mask = torch.nn.Identity()
    return mod


def test_dynamic_aggregation_equals_whole_tensor_form():
    torch.manual_seed(2)
    pre, om, flat = _pre_offset_and_conv(4)
    mod = _identity_offset_conv(DynamicAggregation(16, 4))
    x = torch.randn(2, 16, 11, 13)
    o1, o2, m = torch.chunk(om, 3, 1)
    want = deform_conv2d(x, torch.cat((o1, o2), 1) + flat, mod.weight, mod.bias, padding=(1, 1), mask=m.sigmoid())
    with torch.no_grad():
        got = mod(x, om, pre)
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()


def test_similarity_dyn_agg_equals_official_form():
    torch.manual_seed(3)
    pre, om, flat = _pre_offset_and_conv(4)
    mod = _identity_offset_conv(SimilarityDynAgg(16, 4))
    x, sim = torch.randn(2, 16, 11, 13), torch.rand(2, 1, 11, 13)
    o1, o2, m = torch.chunk(om, 3, 1)
    offset = 10 * torch.tanh(torch.cat((o1, o2), 1)) + flat
    want = deform_conv2d(x, offset, mod.weight, mod.bias, padding=(1, 1), mask=torch.sigmoid(m * sim))
    with torch.no_grad():
        got = mod(x, om, pre, sim)
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()


def _whole_map_block(blk: SwinTransformerBlock, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The official block on the whole map: roll the normed map, attend per window, roll back, MLP."""
    b, _, c = x.shape
    ws, s = blk.window_size, blk.shift_size
    y = blk.norm1(x).view(b, h, w, c)
    if s:
        y = torch.roll(y, (-s, -s), (1, 2))
    mask = shifted_window_mask(h, w, ws, s) if s else None
    y = from_windows(blk.attn(to_windows(y, ws), mask), ws, b, h, w)
    if s:
        y = torch.roll(y, (s, s), (1, 2))
    x = x + y.reshape(b, h * w, c)
    return x + blk.mlp(blk.norm2(x))


@pytest.mark.parametrize("shift", [0, 4])
@pytest.mark.parametrize("chunk", [1, 200, 1 << 16])  # one window row per band, a few, all at once
def test_swin_block_by_bands_equals_whole_map(shift, chunk):
    torch.manual_seed(4)
    h, w = 24, 32
    blk = SwinTransformerBlock(16, 2, 8, shift, 2.0).eval()
    with torch.no_grad():
        for p in blk.parameters():
            p.normal_(0, 0.3)
        x = torch.randn(2, h * w, 16)
        want = _whole_map_block(blk, x, h, w)
        x_before = x.clone()
        got = blk(x, (h, w), chunk_tokens=chunk)
    assert torch.equal(x, x_before)  # the input is not written to (RSTB adds it back)
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()


@pytest.mark.parametrize("shift", [0, 4])
def test_swin_block_training_path_equals_the_bands_and_trains(shift):
    """Training runs the whole map (stochastic depth needs one draw per sample); with drop 0 it gives
    the test-time bands' values, and gradients reach the input and every parameter."""
    torch.manual_seed(5)
    h, w = 16, 24
    blk = SwinTransformerBlock(16, 2, 8, shift, 2.0)
    x = torch.randn(2, h * w, 16, requires_grad=True)
    trained = blk.train()(x, (h, w))
    with torch.no_grad():
        tested = blk.eval()(x, (h, w), chunk_tokens=200)
    assert (trained - tested).abs().max() <= 1e-5 * tested.abs().max()
    trained.square().mean().backward()
    assert x.grad is not None and all(p.grad is not None for p in blk.parameters())
