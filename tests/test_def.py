"""DEF: bicubic operator and its pseudo-inverse, range-space consistency for any denoiser, patch
stitching, determinism, the guided-diffusion UNet's official keys, DCN transfer, tiny forward."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from models import create_model, get_spec
from models.weights import load_weights
from models.def_model import (DEF, BicubicOperator, DetailEnhancer, LevelTransfer, linear_betas,
                              noise_level_timesteps, pinv_svd, respaced_timesteps,
                              window_starts, windows)
from models.guided_diffusion_unet import GUIDED_256_UNCOND, GuidedDiffusionUNet
from core.resize import _pil_bicubic_coeffs, pil_bicubic_weights as pil_bicubic_matrix

KEYS = Path(__file__).parent / "fixtures" / "keys" / "def.json"
TINY = get_spec("def").test_kwargs


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a shared, loaded CPU two OpenMP threads wait on each other per op."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _rand(*shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _tiny_unet(seed=0) -> GuidedDiffusionUNet:
    """The tiny test UNet with every weight random (the official init zeroes the output convs)."""
    net = GuidedDiffusionUNet(**TINY["unet_config"]).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return net


# --------------------------------------------------------------------------- operator


@pytest.mark.parametrize("n_in,n_out", [(256, 64), (40, 10), (52, 13), (12, 3), (4, 1)])
def test_bicubic_matrix_is_the_projects_pil_bicubic(n_in, n_out):
    """Rounded to PIL's 22-bit fixed point, the exact weights are core.resize's fixed-point coefficients."""
    exact = pil_bicubic_matrix(n_in, n_out)
    assert np.allclose(exact.sum(1), 1.0)
    fixed = torch.from_numpy(np.where(exact * 2 ** 22 >= 0, np.floor(exact * 2 ** 22 + 0.5),
                                      np.ceil(exact * 2 ** 22 - 0.5)))
    assert torch.equal(fixed, _pil_bicubic_coeffs(n_in, n_out))


def test_operator_reproduces_pil_downsampling_of_8bit_images():
    img = (_rand(1, 3, 40, 52) * 255).round() / 255
    ours = BicubicOperator((40, 52)).A(img)
    pil = Image.fromarray((img[0] * 255).round().byte().permute(1, 2, 0).numpy()).resize((13, 10), Image.BICUBIC)
    pil = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float()[None] / 255
    assert (ours - pil).abs().max() <= 1.01 / 255  # PIL rounds its intermediate and output to 8 bits


def test_pseudo_inverse_is_the_kronecker_of_axis_pseudo_inverses():
    op = BicubicOperator((16, 24))
    A = torch.kron(op.ah, op.aw)  # row-major vec(Ah X Aw^T) = (Ah kron Aw) vec(X)
    A_pinv = torch.from_numpy(np.linalg.pinv(A.numpy()))
    y = _rand(4, 6).double()
    assert torch.allclose(op.A_pinv(y).reshape(-1), A_pinv @ y.reshape(-1), atol=1e-10)
    assert torch.allclose(A @ A_pinv, torch.eye(24, dtype=torch.float64), atol=1e-10)  # full row rank
    a = pil_bicubic_matrix(64, 16)
    ap = pinv_svd(a)
    assert np.allclose(a @ ap @ a, a) and np.allclose(ap @ a @ ap, ap)
    x = _rand(1, 3, 16, 24).double()
    assert torch.allclose(op.A(op.project(x, y)), y.expand(1, 3, 4, 6), atol=1e-12)  # range space = y
    null = op.project(x, y) - op.A_pinv(y)
    assert torch.allclose(op.A(null), torch.zeros(1, 3, 4, 6, dtype=torch.float64), atol=1e-12)


def test_matlab_kernel_operator_is_the_projects_imresize():
    from core.resize import imresize_tensor

    x = _rand(1, 3, 24, 36).double()
    op = BicubicOperator((24, 36), kernel="matlab")
    assert torch.allclose(op.A(x), imresize_tensor(x, 0.25), atol=1e-12)
    lr = _rand(1, 3, 7, 10)
    x_hat = DetailEnhancer(steps=2, patch=32, kernel="matlab")(lr, lambda x, t: torch.sin(3 * x))
    assert (BicubicOperator((28, 40), kernel="matlab").A(x_hat) - lr).abs().max() <= 1e-4


def test_schedule_endpoints_and_respacing():
    betas = linear_betas()
    assert len(betas) == 1000 and betas[0] == 1e-6 and abs(betas[-1] - 1e-2) < 1e-18
    assert respaced_timesteps(1000, 1000) == list(range(1000))
    ts = respaced_timesteps(1000, 25)
    assert len(ts) == 25 and ts[0] == 0 and ts[-1] == 999
    ab = np.cumprod(1 - betas)[ts]
    model_ab = np.cumprod(1 - linear_betas(1000, 1e-4, 2e-2))
    t_model = noise_level_timesteps(ab, model_ab)
    inside = ab <= model_ab[0]  # less noise than the model's first step: clamped to t = 0
    assert not inside[0] and inside[1:].all() and t_model[0] == 0
    back = np.exp(np.interp(t_model, np.arange(1000), np.log(model_ab)))
    assert np.allclose(back[inside], ab[inside], rtol=1e-6)


# --------------------------------------------------------------------------- detail enhancement

DENOISERS = {
    "tiny_unet": _tiny_unet(),
    "wild": lambda x, t: 3 * torch.sin(5 * x) + 0.01 * t.float().view(-1, 1, 1, 1),  # far from any eps
    "zero": lambda x, t: torch.zeros_like(x),
}


CASES = [(name, lr_hw, 32) for name in DENOISERS for lr_hw in ((10, 13), (17, 9), (12, 16), (3, 5))]
CASES += [(name, lr_hw, 256) for name in ("wild", "zero") for lr_hw in ((20, 36), (70, 33), (64, 96))]
# (the tiny UNet is not run on 256x256 windows: its full-resolution attention would need GBs)


@pytest.mark.parametrize("name,lr_hw,patch", CASES)  # HR below the patch, odd sizes, one or several windows
def test_range_space_consistency_for_any_denoiser(name, lr_hw, patch):
    steps = 3 if name == "tiny_unet" else 2
    enh = DetailEnhancer(steps=steps, patch=patch, seed=1)
    lr = _rand(2, 3, *lr_hw)
    x_hat = enh(lr, DENOISERS[name])
    assert x_hat.shape == (2, 3, 4 * lr_hw[0], 4 * lr_hw[1]) and torch.isfinite(x_hat).all()
    assert (BicubicOperator(x_hat.shape[-2:]).A(x_hat) - lr).abs().max() <= 1e-4


def test_each_window_is_consistent_before_the_global_projection():
    """Per window, the last DDNM step returns A^+ y + (I - A^+ A) x0: consistent with its own LR."""
    enh = DetailEnhancer(steps=3, patch=32, seed=0, global_projection=False)
    y = _rand(1, 3, 8, 8) * 2 - 1
    x = enh.reverse_process(y, DENOISERS["tiny_unet"], torch.Generator().manual_seed(0))
    assert (BicubicOperator((32, 32)).A(x) - y).abs().max() <= 1e-5


@pytest.mark.parametrize("h,w,size", [(10, 13, 64), (64, 64, 64), (70, 33, 64), (96, 160, 64), (100, 37, 64),
                                      (9, 17, 8), (5, 3, 8)])
def test_windows_cover_every_pixel_with_half_overlap(h, w, size):
    cover = torch.zeros(h, w, dtype=torch.int64)
    for top, left, wh, ww in windows(h, w, size):
        assert wh == min(size, h) and ww == min(size, w) and top + wh <= h and left + ww <= w
        cover[top:top + wh, left:left + ww] += 1
    assert (cover >= 1).all()
    for length in (h, w):
        starts = window_starts(length, size, size // 2)
        if length > size:
            assert all(b - a == size // 2 for a, b in zip(starts[:-2], starts[1:-1]))
            assert 0 < starts[-1] - starts[-2] <= size // 2 and starts[-1] == length - size
        else:
            assert starts == [0]


@pytest.mark.parametrize("lr_hw", [(10, 13), (20, 36), (70, 33)])
def test_stitching_later_window_overwrites_the_overlap(monkeypatch, lr_hw):
    """Every HR pixel comes from the last window (raster order) that contains it, none is left empty."""
    enh = DetailEnhancer(steps=1, patch=256, global_projection=False)
    calls = []

    def fake(y, denoiser, gen):
        calls.append(len(calls))
        return torch.full((1, 3, 4 * y.shape[-2], 4 * y.shape[-1]), 2.0 * len(calls) - 1)

    monkeypatch.setattr(enh, "reverse_process", fake)
    out = enh(_rand(1, 3, *lr_hw), None)
    assert torch.isfinite(out).all()
    owner = torch.full((4 * lr_hw[0], 4 * lr_hw[1]), -1.0)
    for k, (top, left, wh, ww) in enumerate(windows(*lr_hw, 64)):
        owner[4 * top:4 * (top + wh), 4 * left:4 * (left + ww)] = k + 1
    assert (owner > 0).all() and torch.equal(out[0, 0], owner)


def test_fixed_seed_gives_identical_output():
    lr = _rand(1, 3, 12, 10)
    runs = [DetailEnhancer(steps=3, patch=32, seed=s)(lr, DENOISERS["tiny_unet"]) for s in (7, 7, 8)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])


def test_noise_level_timestep_map_feeds_fractional_timesteps():
    seen = []

    def spy(x, t):
        seen.append(t.clone())
        return torch.zeros_like(x)

    DetailEnhancer(steps=4, patch=32, timestep_map="noise_level")(_rand(1, 3, 8, 8), spy)
    ts = torch.cat(seen)
    assert ts.dtype == torch.float32 and len(ts) == 4
    assert (ts[:-1] > ts[1:]).all() and ts[0] < 999  # paper schedule is gentler than the model's
    seen.clear()
    DetailEnhancer(steps=4, patch=32)(_rand(1, 3, 8, 8), spy)
    assert torch.equal(torch.cat(seen), torch.tensor([999, 666, 333, 0]))


# --------------------------------------------------------------------------- denoiser weights


def test_full_guided_diffusion_unet_keys_and_shapes_equal_official():
    fixture = json.loads(KEYS.read_text())["roles"]["denoiser"]
    with torch.device("meta"):  # 552.8M parameters: compare shapes without allocating them
        net = GuidedDiffusionUNet(**GUIDED_256_UNCOND)
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == fixture["keys"]
    assert sum(p.numel() for p in net.parameters()) == fixture["params"] == 552_814_086


def test_official_format_denoiser_and_texture_files_load(tmp_path):
    model = create_model("def", **TINY)
    src_unet, src_net = _tiny_unet(seed=3), create_model("def", **TINY).net_g
    torch.save(src_unet.state_dict(), tmp_path / "unet.pt")
    torch.save({"params": src_net.state_dict()}, tmp_path / "net_g.pth")
    load_weights(model, {"denoiser": tmp_path / "unet.pt", "net_g": tmp_path / "net_g.pth"})
    for role, src in (("denoiser", src_unet), ("net_g", src_net)):
        dst = model.checkpoint_modules()[role].state_dict()
        assert all(torch.equal(dst[k], v) for k, v in src.state_dict().items())


# --------------------------------------------------------------------------- texture transfer


def test_dcn_transfer_is_eq13_with_zero_learnt_offsets():
    """With the offset/mask conv at its zero init: T(p) = C(p) * sum_j w_j F_ref(P(p) + p_j) * sigmoid(0)."""
    torch.manual_seed(0)
    C, H, W, Hr, Wr = 4, 5, 7, 4, 9  # reference shorter but wider than the target grid (both paddings)
    lt = LevelTransfer(C, groups=2).eval()
    ref = torch.randn(1, C, Hr, Wr)
    de = torch.randn(1, C, H, W)
    py, px = torch.randint(0, Hr, (H, W)), torch.randint(0, Wr, (H, W))
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    disp = torch.stack((px - xs, py - ys), -1)[None]
    conf = torch.rand(1, 1, H, W)
    with torch.no_grad():
        out = lt(ref, de, disp, conf)
        patches = F.unfold(F.pad(ref, (1, 1, 1, 1)), 3).view(1, C * 9, Hr, Wr)  # zero outside the reference
        picked = patches[0][:, py, px]  # (C*9, H, W): the 3x3 patch centred at P(p)
        expect = torch.einsum("ok,khw->ohw", lt.dcn.weight.reshape(C, C * 9), picked * 0.5)
        expect = (expect + lt.dcn.bias.view(C, 1, 1)) * conf[0]
    assert torch.allclose(out[0], expect, atol=1e-5)


def test_tiny_forward_shape_range_reference_and_batch_independence():
    model = create_model("def", **TINY).eval()
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    lr, ref = _rand(2, 3, 9, 11), _rand(2, 3, 35, 30, seed=1)  # ref not a multiple of 4
    with torch.no_grad():
        sr = model(lr, ref)
        assert sr.shape == (2, 3, 36, 44) and torch.isfinite(sr).all() and sr.min() >= 0 and sr.max() <= 1
        assert torch.allclose(model(lr[1:], ref[1:]), sr[1:], atol=1e-5)  # batch independence
        de = model.enhance(lr)
        out, conf, idx = model.transfer(lr, de, ref, return_maps=True)
        assert conf.shape == (2, 1, 9, 11) and idx.shape == (2, 9, 11) and int(idx.max()) < 8 * 7
        other = model.transfer(lr, de, torch.flip(ref, dims=[-1]))
        assert (other - out).abs().max() > 1e-4  # the reference is used
        assert torch.allclose(out.clamp(0, 1), sr, atol=1e-6)  # forward = enhance then transfer


def test_pluggable_plain_callable_denoiser():
    model = DEF(denoiser=lambda x, t: torch.zeros_like(x), **{k: v for k, v in TINY.items() if k != "unet_config"})
    assert "denoiser" not in model.checkpoint_modules()
    with torch.no_grad():
        sr = model(_rand(1, 3, 8, 8), _rand(1, 3, 32, 32))
    assert sr.shape == (1, 3, 32, 32)


def test_full_texture_net_parameter_count():
    """Our own architecture (no official net_g exists): pinned so that changes are deliberate."""
    from models.def_model import DEFTextureNet

    net = DEFTextureNet()
    assert sum(p.numel() for p in net.parameters()) == 10_699_095
    assert not any(p.requires_grad for p in net.LTE.parameters())  # Sec. 4.5: the extractor stays fixed
