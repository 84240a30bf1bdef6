"""FRFSR: DDF op vs a float64 loop, tiny forward, official keys/params, parity with the official code."""
from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models import create_model, get_spec
from models.frfsr_parts import DDFPack, ddf
from models.weights import MissingWeights, load_weights, resolve_weights
from tests.parity import assert_intermediates_match

KEYS = Path(__file__).parent / "fixtures" / "keys" / "frfsr.json"
ROLE_CHECKPOINT = {"net_g": "restoration", "rrdb": "rrdb", "extractor": "feature_extraction", "vgg19": "vgg19_map"}


# ----------------------------------------------------------------------------- DDF op
def _ddf_loop(x, cf, sf, k, d, s, combine):
    """Per-pixel float64 loop from the definition (zero padding, output h//s x w//s)."""
    b, c, h, w = x.shape
    r = (k - 1) // 2
    out = np.zeros((b, c, h // s, w // s))
    for y, xx, i, j in itertools.product(range(h // s), range(w // s), range(k), range(k)):
        iy, ix = y * s + (i - r) * d, xx * s + (j - r) * d
        if 0 <= iy < h and 0 <= ix < w:
            spatial = sf[:, i * k + j, y, xx][:, None]  # (b, 1)
            filt = spatial * cf[:, :, i, j] if combine == "mul" else spatial + cf[:, :, i, j]
            out[:, :, y, xx] += x[:, :, iy, ix] * filt
    return out


@pytest.mark.parametrize("combine", ["mul", "add"])
def test_ddf_op_equals_float64_loop(combine):
    gen = torch.Generator().manual_seed(0)
    h, w = 7, 9  # odd sizes: h//s drops the last row/column for stride 2
    for k, d, s in itertools.product((3, 5), (1, 2), (1, 2)):
        x = torch.randn(2, 3, h, w, generator=gen)
        cf = torch.randn(2, 3, k, k, generator=gen)
        sf = torch.randn(2, k * k, h // s, w // s, generator=gen)
        got = ddf(x, cf, sf, k, d, s, combine)
        want = _ddf_loop(x.double().numpy(), cf.double().numpy(), sf.double().numpy(), k, d, s, combine)
        assert got.shape == want.shape
        assert np.abs(got.double().numpy() - want).max() <= 1e-5, (k, d, s, combine)


def test_ddf_pack_heads_and_filters():
    """DDFPack = its two branches fed to the op; with 2 heads each half of the channels uses its own
    spatial filter (official reshape to (b*head, c/head))."""
    torch.manual_seed(0)
    pack = DDFPack(8, kernel_size=3, head=2, kernel_combine="mul").eval()
    x = torch.randn(2, 8, 6, 5)
    with torch.no_grad():
        cf = pack.channel_branch(x).reshape(2, 8, 3, 3)
        sf = pack.spatial_branch(x).reshape(2, 2, 9, 6, 5)
        want = torch.cat([ddf(x[:, :4], cf[:, :4], sf[:, 0]), ddf(x[:, 4:], cf[:, 4:], sf[:, 1])], 1)
        torch.testing.assert_close(pack(x), want, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="spatial_filter"):
        ddf(x, cf, sf[:, 0, :, :5, :4])


# ----------------------------------------------------------------------------- tiny model
@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = create_model("frfsr", **get_spec("frfsr").test_kwargs).eval()
    # the official init zeroes the offset convs: give them small values so the learned offsets matter
    with torch.no_grad():
        for name, p in model.net_g.named_parameters():
            if "conv_offset_mask" in name:
                p.normal_(0, 1e-3)
    return model


def test_tiny_forward_shape_range_reference_and_batch_independence(tiny_model):
    model = tiny_model
    gen = torch.Generator().manual_seed(1)
    lr, ref = torch.rand(2, 3, 16, 17, generator=gen), torch.rand(2, 3, 66, 62, generator=gen)
    with torch.no_grad():
        out = model(lr, ref)
        alone = model(lr[1:], ref[1:])
        other_ref = model(lr[:1], ref[1:])
    assert out.shape == (2, 3, 64, 68)
    assert torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    assert (out[:1] - other_ref).abs().max() > 1e-4  # the reference is used
    torch.testing.assert_close(alone, out[1:], rtol=0, atol=1e-5)


def test_tiny_forward_pads_lr_below_the_esa_minimum(tiny_model):
    """ESA needs LR sides >= 15: smaller inputs are zero-padded, the output cropped back."""
    with torch.no_grad():
        out = tiny_model(torch.rand(1, 3, 9, 12), torch.rand(1, 3, 40, 30))
    assert out.shape == (1, 3, 36, 48) and torch.isfinite(out).all()


def test_vgg19_role_accepts_torchvision_keys(tiny_model):
    tv = {f"features.{i}.{kind}": torch.zeros(1) for i in (0, 2, 5, 7, 10) for kind in ("weight", "bias")}
    tv["classifier.0.weight"] = torch.zeros(1)
    mapped = tiny_model.checkpoint_filter("vgg19", tv)
    assert set(mapped) == set(tiny_model.net_map.state_dict())
    official = tiny_model.net_map.state_dict()
    assert tiny_model.checkpoint_filter("vgg19", official) is official


def test_rrdb_file_uses_params_even_with_params_ema(tiny_model, tmp_path):
    """The official load_network_rrdb reads 'params' (BasicSR file) and ignores 'params_ema'."""
    sd = tiny_model.sisr.state_dict()
    ema = {k: v + 1 for k, v in sd.items()}
    torch.save({"params_ema": ema, "params": sd}, tmp_path / "rrdb.pth")
    got = tiny_model.read_checkpoint("rrdb", tmp_path / "rrdb.pth")
    assert all(torch.equal(got[k], sd[k]) for k in sd)
    torch.save({"params": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "rrdb2.pth")
    assert set(tiny_model.read_checkpoint("rrdb", tmp_path / "rrdb2.pth")) == set(sd)


# ----------------------------------------------------------------------------- full model
def test_tags_say_the_weights_are_not_published(tmp_path, monkeypatch):
    spec = get_spec("frfsr")
    assert spec.tag_names() == ["frfsr", "frfsr.gan"]
    for tag in spec.tags:
        assert "NOT PUBLISHED" in tag.description
        assert {c.role for c in tag.files} == {"net_g", "rrdb", "extractor", "vgg19"}
        assert all(not c.url for c in tag.files if c.role in ("net_g", "rrdb"))
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeights, match=r"frfsr_rec_net_g\.pth.*not published"):
        resolve_weights("frfsr")


@pytest.fixture(scope="module")
def full_model():
    return create_model("frfsr").eval()


def test_keys_and_params_equal_official(full_model):
    fixture = json.loads(KEYS.read_text())["roles"]
    modules = full_model.checkpoint_modules()
    assert set(modules) == set(fixture)
    for role, module in modules.items():
        assert {k: list(v.shape) for k, v in module.state_dict().items()} == fixture[role]["keys"], role
        assert sum(p.numel() for p in module.parameters()) == fixture[role]["params"], role


def test_parity_with_official(full_model, parity_dir, tmp_path_factory):
    spec = importlib.util.spec_from_file_location("make_weights", parity_dir / "make_weights.py")
    make_weights = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_weights)
    out = tmp_path_factory.mktemp("frfsr_weights")
    files = {role: make_weights.write(parity_dir / "frfsr.json", out / f"{ck}.pth", ck)
             for role, ck in ROLE_CHECKPOINT.items()}
    assert set(torch.load(files["rrdb"], weights_only=True)) == {"params"}  # BasicSR format, unchanged
    model = full_model
    load_weights(model, files)  # the project's loader, files unchanged

    io = torch.load(parity_dir / "frfsr.io.pth", weights_only=True)
    inp, mid = io["inputs"], io["intermediates"]
    probes: dict[str, torch.Tensor] = {}
    hooks = [mod.register_forward_hook(lambda m, i, o, n=n: probes.__setitem__(n, o[:, ::8, ::4, ::4].clone()))
             for n, mod in model.net_g.named_modules() if n in mid["net_g_probes"]]
    try:
        with torch.no_grad():
            features = model.extract_features(inp["img_in_up"], inp["img_ref"])
            (pre_offset, pre_flow, pre_sim), ref_feat = model.correspondence(features, inp["img_ref"], similarity=True)
            sife = model.sife(inp["img_in_lq"])
            sr = model.restore(inp["img_in_lq"], sife, pre_offset, pre_flow, ref_feat)
    finally:
        for h in hooks:
            h.remove()
    assert_intermediates_match({"features": features, "pre_offset": pre_offset, "pre_flow": pre_flow,
                                "pre_similarity": pre_sim, "img_ref_feat": ref_feat, "net_g_probes": probes}, mid)
    assert (sife - mid["sife"]).abs().max() <= 1e-4
    assert (sr - io["outputs"]["sr"]).abs().max() <= 1e-4
