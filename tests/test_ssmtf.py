"""SSMTF: chunked selective scan vs the recurrence, tiny forward, official keys, parity."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from models.weights import load_weights
from models.selective_scan import (chunk_length, scan_plan, selective_scan, selective_scan_chunked,
                                   selective_scan_ref)
from models import create_model, get_spec, list_models
from models.ssmtf import SPEC, SS2D, SSMTF

KEYS = Path(__file__).parent / "fixtures" / "keys" / "ssmtf.json"
# official file role -> (parity json checkpoint, our attribute)
ROLES = {"net_g": ("net_g", "net_g"), "extractor": ("net_extractor", "net_extractor"),
         "vgg19": ("net_map", "net_map")}


# ----------------------------------------------------------------------------- selective scan
def _recurrence64(u, delta, A, B, C, D, z, delta_bias, softplus):
    """The definition in float64, one step and one channel group at a time (independent of the op)."""
    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.double()[:, None]
    if softplus:
        delta = torch.log1p(torch.exp(delta))
    b, d, L = u.shape
    if B.dim() == 3:
        B, C = B[:, None], C[:, None]
    per = d // B.shape[1]
    h = torch.zeros(b, d, A.shape[1], dtype=torch.float64)
    y = torch.zeros(b, d, L, dtype=torch.float64)
    for t in range(L):
        for g in range(B.shape[1]):
            ch = slice(g * per, (g + 1) * per)
            h[:, ch] = (torch.exp(delta[:, ch, t, None] * A[ch]) * h[:, ch]
                        + delta[:, ch, t, None] * B[:, g, None, :, t] * u[:, ch, t, None])
            y[:, ch, t] = (h[:, ch] * C[:, g, None, :, t]).sum(-1)
    if D is not None:
        y = y + u * D.double()[:, None]
    if z is not None:
        y = y * F.silu(z.double())
    return y, h


def _scan_inputs(b, groups, per, n, L, dtype, seed, dt_shift=-3.0, a_mean=1.0, shared_bc=False):
    g = torch.Generator().manual_seed(seed)
    d = groups * per
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    bc = (b, n, L) if shared_bc else (b, groups, n, L)
    return dict(u=r(b, d, L), delta=r(b, d, L) * 0.5, A=-torch.exp(r(d, n) * 0.5 + a_mean),
                B=r(*bc), C=r(*bc), D=r(d), z=r(b, d, L), delta_bias=r(d) + dt_shift,
                delta_softplus=True)


@pytest.mark.parametrize("shape", [(2, 4, 3, 16, 203), (1, 1, 5, 3, 77), (1, 2, 2, 4, 1), (3, 4, 2, 5, 64)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_chunked_scan_equals_float64_recurrence(shape, dtype):
    """Random inputs, grouped B/C, several L, chunk lengths that do not divide L; <= 1e-6 relative."""
    kw = _scan_inputs(*shape, dtype=dtype, seed=sum(shape))
    ref, ref_state = _recurrence64(kw["u"], kw["delta"], kw["A"], kw["B"], kw["C"], kw["D"], kw["z"],
                                   kw["delta_bias"], True)
    for method, max_chunk in (("auto", 64), ("log", 64), ("log", 7), ("log", 5), ("log", 1),
                              ("doubling", 64), ("doubling", 7), ("doubling", 1)):
        out, state = selective_scan_chunked(**kw, return_last_state=True, max_chunk=max_chunk,
                                            method=method)
        assert out.dtype == dtype and out.shape == ref.shape
        rel = ((out.double() - ref).abs().max() / ref.abs().max()).item()
        rel_state = ((state.double() - ref_state).abs().max() / ref_state.abs().max()).item()
        assert rel <= 1e-6 and rel_state <= 1e-6, (method, max_chunk, rel, rel_state)


def test_chunk_length_keeps_exponentials_bounded_and_is_used():
    kw = _scan_inputs(1, 4, 8, 16, 300, torch.float32, seed=3, dt_shift=-6.0, a_mean=0.0)
    delta = F.softplus(kw["delta"] + kw["delta_bias"][:, None])
    T = chunk_length(delta, kw["A"], 40.0)
    assert T >= 32  # slow decays: long chunks
    fast = dict(kw, delta_bias=kw["delta_bias"] + 8.0, A=kw["A"] * 20)  # ~tens of e-folds per step
    delta = F.softplus(fast["delta"] + fast["delta_bias"][:, None])
    T = chunk_length(delta, fast["A"], 40.0)
    assert T < 64 and T * float(delta.max()) * float(fast["A"].abs().max()) <= 40.0 or T == 1
    ref, _ = _recurrence64(*(fast[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")), True)
    for method in ("auto", "log", "doubling"):  # auto = doubling here
        out = selective_scan_chunked(**fast, method=method)
        assert torch.isfinite(out).all()
        assert ((out.double() - ref).abs().max() / ref.abs().max()).item() <= 1e-6, method


def test_chunk_length_fits_the_sequence():
    """The doubling form's chunk is the longest power of two <= max_chunk that pads L by at most an
    eighth (SSMTF's fixture lengths 192 / 768 / 3072: 64 / 128 / 128, no 128-step chunk half made
    of padding; an odd L still gets long chunks)."""
    A = -torch.ones(2, 4)
    for L, T in ((192, 64), (768, 128), (3072, 128), (1, 1), (5, 1), (100, 16), (96, 32), (203, 32)):
        assert scan_plan(torch.full((1, 2, L), 0.01), A, 40.0)[1] == T, L
    assert scan_plan(torch.full((1, 2, 192), 0.01), A, 40.0, max_chunk=7)[1] == 4


def test_shared_and_fixed_bc_and_plain_options():
    kw = _scan_inputs(2, 1, 6, 4, 50, torch.float64, seed=5, shared_bc=True)  # B/C (batch, N, L)
    for extra in (dict(), dict(D=None, z=None, delta_bias=None, delta_softplus=False)):
        args = {**kw, **extra}
        if not args["delta_softplus"]:
            args["delta"] = args["delta"].abs() * 0.1
        ref, _ = _recurrence64(args["u"], args["delta"], args["A"], args["B"], args["C"], args["D"],
                               args["z"], args["delta_bias"], args["delta_softplus"])
        for fn in (selective_scan_chunked, selective_scan_ref):
            assert ((fn(**args).double() - ref).abs().max() / ref.abs().max()).item() <= 1e-9
    # fixed (D, N) B and C equal the same values broadcast over batch and time
    fixed = dict(kw, B=torch.randn(6, 4, dtype=torch.float64), C=torch.randn(6, 4, dtype=torch.float64))
    expanded = dict(fixed, B=fixed["B"][None, :, :, None].expand(2, 6, 4, 50),
                    C=fixed["C"][None, :, :, None].expand(2, 6, 4, 50))
    torch.testing.assert_close(selective_scan_chunked(**fixed), selective_scan_chunked(**expanded))


def test_dispatch_records_backend():
    import models.selective_scan as ops
    kw = _scan_inputs(1, 2, 2, 4, 20, torch.float32, seed=7)
    selective_scan(**kw)
    assert ops.LAST_BACKEND == "chunked"  # CPU tensors: never mamba-ssm's CUDA kernel
    torch.testing.assert_close(selective_scan(**kw, backend="ref"), selective_scan(**kw), rtol=1e-5, atol=1e-5)
    assert ops.LAST_BACKEND == "chunked"


# ----------------------------------------------------------------------------- model
@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = SSMTF(**SPEC.test_kwargs).eval()
    with torch.no_grad():  # non-zero learnt offsets so the reference path is exercised fully
        for m in model.modules():
            if hasattr(m, "conv_offset_mask"):
                m.conv_offset_mask.weight.normal_(0, 1e-2)
    return model


def test_tiny_forward_shape_range_ref_used_batch_independent(tiny_model):
    torch.manual_seed(1)
    lr, ref = torch.rand(2, 3, 6, 7), torch.rand(2, 3, 35, 26)  # ref larger in h, smaller in w
    with torch.no_grad():
        out = tiny_model(lr, ref)
        assert out.shape == (2, 3, 24, 28)
        assert torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
        assert tiny_model.scan_backends == {"chunked"}
        other = tiny_model(lr, torch.rand(2, 3, 35, 26))
        assert (other - out).abs().max() > 1e-4  # the reference changes the result
        single = tiny_model(lr[1:], ref[1:])
        torch.testing.assert_close(single, out[1:], rtol=0, atol=1e-5)


def test_ss2d_directions_and_backends_agree():
    """SS2D on a non-square grid: chunked == per-step reference; the four scan orders are right:
    with directions (0,1) and (2,3) swapped and the depthwise kernel rotated, the SS2D of the
    180-degree-rotated input is the rotated output (row/column orders become their reverses)."""
    torch.manual_seed(2)
    ss = SS2D(8, d_state=4).eval()
    x = torch.randn(1, 5, 7, 8)
    swapped = SS2D(8, d_state=4).eval()
    perm = [2, 3, 0, 1]
    with torch.no_grad():
        out = ss(x)
        ss.scan_backend = "ref"
        torch.testing.assert_close(ss(x), out, rtol=1e-5, atol=1e-5)
        swapped.load_state_dict(ss.state_dict())
        for name in ("x_proj_weight", "dt_projs_weight", "dt_projs_bias"):
            getattr(swapped, name).copy_(getattr(ss, name)[perm])
        swapped.A_logs.copy_(ss.A_logs.view(4, -1, 4)[perm].reshape(-1, 4))
        swapped.Ds.copy_(ss.Ds.view(4, -1)[perm].reshape(-1))
        swapped.conv2d.weight.copy_(ss.conv2d.weight.flip(-1, -2))
        rotated = swapped(x.flip(1, 2)).flip(1, 2)
    torch.testing.assert_close(rotated, out, rtol=1e-4, atol=1e-5)


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def test_net_g_random_init_is_the_official_one():
    """srntt_init_weights: N(0, 0.02) and zero bias on every Conv2d, Linear and DeformConv2d (class names with
    'Conv' or 'Linear'), then the DCN offset/mask convs zeroed; Mamba's own init for x_proj / dt_projs."""
    from torchvision.ops import DeformConv2d

    torch.manual_seed(0)
    net = create_model("ssmtf", ngf=64, n_blocks=1, groups=8, mamba_groups=1, mamba_depth=1).net_g
    mods = [(n, m) for n, m in net.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, DeformConv2d))]
    assert {type(m) for _, m in mods} == {torch.nn.Conv2d, torch.nn.Linear, DeformConv2d}
    for name, m in mods:
        assert m.bias is None or not m.bias.any(), name
        if name.endswith("conv_offset_mask"):
            assert not m.weight.any(), name
        elif m.weight.numel() >= 4096:
            assert abs(m.weight.std().item() - 0.02) < 0.002, name
    ss2d = net.dyn_agg_restore.body_large.mamaba[0].residual_group.blocks[0].self_attention
    assert ss2d.x_proj_weight.abs().max() <= ss2d.d_inner ** -0.5  # uniform(+-d_inner^-1/2), not N(0, 0.02)


def test_registered_with_tags():
    assert "ssmtf" in list_models() and get_spec("ssmtf") is SPEC
    assert SPEC.tag_names() == ["ssmtf", "ssmtf.gan"]
    default, gan = SPEC.tag(""), SPEC.tag("gan")
    assert {f.role: f.filename for f in default.files} == {
        "net_g": "net_g_445000.pth", "extractor": "net_student_latest_DRef.pth", "vgg19": "vgg19-dcbb9e9d.pth"}
    assert {f.role: f.filename for f in gan.files}["net_g"] == "net_g_235000_gan.pth"
    assert set(SSMTF(**SPEC.test_kwargs).checkpoint_modules()) == {f.role for f in default.files}


def test_keys_and_shapes_equal_official():
    fixture = json.loads(KEYS.read_text())["roles"]
    model = SSMTF()
    for role, (_, attr) in ROLES.items():
        module = getattr(model, attr)
        assert _shapes(module) == fixture[role]["keys"], role
        assert list(module.state_dict()) == list(fixture[role]["keys"]), role  # official order too
        assert sum(p.numel() for p in module.parameters()) == fixture[role]["params"], role
    assert fixture["net_g"]["params"] == 10_016_293


# ----------------------------------------------------------------------------- parity
@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    from tests.conftest import shared_path
    base = shared_path("fixtures", "parity")  # skips with a reason when ../shared is absent
    spec = importlib.util.spec_from_file_location("make_weights", base / "make_weights.py")
    mw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mw)
    out = tmp_path_factory.mktemp("ssmtf_weights")
    files = {role: mw.write(base / "ssmtf.json", out / f"{group}.pth", group)
             for role, (group, _) in ROLES.items()}
    model = create_model("ssmtf").eval()
    load_weights(model, {role: str(path) for role, path in files.items()})  # the generic loader
    io = torch.load(base / "ssmtf.io.pth", weights_only=True)
    return model, io


def _maxdiff(a, b) -> float:
    return (a - b).abs().max().item()


def test_parity_extractor_and_map(parity):
    model, io = parity
    inp, mid = io["inputs"], io["intermediates"]
    with torch.no_grad():
        feats = model.extract_features(inp["img_in_up"], inp["img_ref"])
        for k in ("dense_features1", "dense_features2"):
            assert _maxdiff(feats[k], mid["features"][k]) <= 1e-4, k
        pre_offset, ref_feat = model.correspondence(mid["features"], inp["img_ref"])
    for k, v in mid["pre_offset"].items():
        assert torch.equal(pre_offset[k], v), k
    for k, v in mid["img_ref_feat"].items():
        assert _maxdiff(ref_feat[k], v) <= 1e-4, k


def test_parity_net_g_outputs_and_intermediates(parity):
    model, io = parity
    inp, mid = io["inputs"], io["intermediates"]
    probes = {"content_feat": "content_extractor", "small_dcn": "dyn_agg_restore.small_dyn_agg",
              "small_ss2d_first": "dyn_agg_restore.body_small.mamaba.0.residual_group.blocks.0.self_attention",
              "small_mamba": "dyn_agg_restore.body_small", "medium_mamba": "dyn_agg_restore.body_medium",
              "restore": "dyn_agg_restore"}
    seen, handles = {}, []
    named = dict(model.net_g.named_modules())
    for name, path in probes.items():
        handles.append(named[path].register_forward_hook(
            lambda _m, _i, o, name=name: seen.__setitem__(name, o.detach().clone())))
    try:
        with torch.no_grad():
            sr = model.forward_official(inp["img_in_lq"], inp["img_in_up"], inp["img_ref"])
    finally:
        for h in handles:
            h.remove()
    assert model.scan_backends == {"chunked"}
    for name in probes:
        assert _maxdiff(seen[name], mid["net_g"][name]) <= 1e-4, name
    assert _maxdiff(sr, io["outputs"]["sr"]) <= 1e-4
