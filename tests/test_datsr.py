"""DATSR: tiny forward, odd sizes, official key/shape fixture, Swin buffers, DCN layout, parity."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import vgg
from torchvision.ops import deform_conv2d

from core.resize import pil_bicubic_tensor
from models import create_model, get_spec
from models.checkpoint import CheckpointError, load_into, read_state_dict
from models.datsr_parts import SwinBody, drop_path, drop_swin_buffers, relative_position_index, shifted_window_mask
from models.weights import MissingWeights, load_weights, resolve_weights
from tests.parity import assert_intermediates_match

pytestmark = pytest.mark.usefixtures("one_thread")

KEYS = Path(__file__).parent / "fixtures" / "keys" / "datsr.json"
ROLE_MODULE = {"net_g": "net_g", "extractor": "net_extractor", "vgg19": "net_map"}
PARITY_FILES = {"net_g": "net_g", "extractor": "net_extractor", "vgg19": "net_map"}  # role -> parity json group




@pytest.fixture(scope="module")
def full_model():
    torch.manual_seed(0)
    return create_model("datsr").eval()


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = create_model("datsr", **get_spec("datsr").test_kwargs).eval()
    # give the zero-initialised offset/mask convs some weight so offsets and masks matter
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "conv_offset_mask" in name:
                p.normal_(0, 1e-2)
    return model


def test_tiny_forward_shape_range_ref_used_batch_independent(tiny_model):
    torch.manual_seed(1)
    lr, ref = torch.rand(2, 3, 8, 9), torch.rand(2, 3, 40, 30)  # ref taller, narrower than the HR
    with torch.no_grad():
        out = tiny_model(lr, ref)
        single = tiny_model(lr[1:], ref[1:])
        other_ref = tiny_model(lr[1:], torch.rand(1, 3, 40, 30))
    assert out.shape == (2, 3, 32, 36)
    assert torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    assert (out[1:] - single).abs().max() <= 1e-5
    assert (single - other_ref).abs().max() > 1e-3


@pytest.mark.slow  # ~40 s on one thread: torchvision's CPU deform_conv2d at 384x512 dominates
def test_forward_on_common_protocol_size(tiny_model):
    """368x500 HR (LR 92x125): not a multiple of 32; forward pads and crops back."""
    torch.manual_seed(2)
    lr, ref = torch.rand(1, 3, 92, 125), torch.rand(1, 3, 350, 510)
    with torch.no_grad():
        out = tiny_model(lr, ref)
    assert out.shape == (1, 3, 368, 500)
    assert torch.isfinite(out).all()


def test_forward_equals_official_step_on_multiple_of_32(tiny_model):
    torch.manual_seed(3)
    lr, ref = torch.rand(1, 3, 8, 16), torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        ours = tiny_model(lr, ref)
        official = tiny_model.forward_official(lr, pil_bicubic_tensor(lr, (32, 64)), ref)
    assert torch.equal(ours, official.clamp(0, 1))


def test_keys_shapes_and_params_equal_official(full_model):
    files = json.loads(KEYS.read_text())["roles"]
    for role, attr in ROLE_MODULE.items():
        module = getattr(full_model, attr)
        want = {k: s for k, s in files[role]["keys"].items() if k not in set(files[role]["swin_buffers"])}
        assert {k: list(v.shape) for k, v in module.state_dict().items()} == want, role
        assert sum(p.numel() for p in module.parameters()) == files[role]["params"], role
    assert len(files["net_g"]["swin_buffers"]) == 60


def test_checkpoint_filter_checks_and_drops_swin_buffers():
    key = "dyn_agg_restore.up_body_medium.layers.0.residual_group.blocks.1.attn_mask"
    idx_key = "dyn_agg_restore.up_body_medium.layers.0.residual_group.blocks.1.attn.relative_position_index"
    good_mask = shifted_window_mask(80, 80, 8, 4)
    assert good_mask.shape == (100, 64, 64)
    sd = {key: good_mask, idx_key: relative_position_index(8), "x.weight": torch.zeros(1)}
    assert list(drop_swin_buffers(sd)) == ["x.weight"]
    bad = good_mask.clone()
    bad[0, 0, 1] = -100.0 if bad[0, 0, 1] == 0 else 0.0
    with pytest.raises(CheckpointError, match="shifted-window mask"):
        drop_swin_buffers({key: bad})


def test_shifted_window_mask_matches_region_labels():
    """Independent formulation: label the 3x3 regions of the rolled map, compare per window."""
    h, w, ws, s = 16, 24, 8, 4
    img = torch.zeros(h, w)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
        for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            img[hs, wsl] = cnt
            cnt += 1
    win = img.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    want = (win[:, None, :] - win[:, :, None]).ne(0).float() * -100.0
    assert torch.equal(shifted_window_mask(h, w, ws, s), want)


def test_stochastic_depth_acts_in_training_only_with_the_official_rates():
    torch.manual_seed(0)
    x = torch.randn(4000, 3, 2)
    y = drop_path(x, 0.25, True)
    dropped = (y == 0).flatten(1).all(1)
    assert torch.allclose(y[~dropped], x[~dropped] / 0.75)  # a kept sample is kept whole, rescaled
    assert abs(dropped.float().mean().item() - 0.25) < 0.03
    assert drop_path(x, 0.25, False) is x
    body = SwinBody(8, depths=(2, 3), num_heads=(2, 2))  # official SwinBlock: linspace(0, 0.1) over all blocks
    assert [b.drop for layer in body.layers for b in layer.residual_group.blocks] == pytest.approx(
        [0, 0.025, 0.05, 0.075, 0.1])
    t = torch.randn(16, 8, 8, 8)
    assert torch.equal(body.eval()(t), body(t))
    assert not torch.equal(body.train()(t), body(t))


def test_deform_conv_offset_layout_is_dy_dx():
    """torchvision deform_conv2d: offset channel 2k is dy and 2k+1 is dx of tap k (as mmcv)."""
    torch.manual_seed(4)
    x, weight = torch.randn(1, 4, 6, 7), torch.randn(5, 4, 3, 3)
    offset = torch.zeros(1, 18, 6, 7)
    offset[:, 0::2] = 1.0  # every tap one row down
    mask = torch.full((1, 9, 6, 7), 0.5)
    got = deform_conv2d(x, offset, weight, padding=(1, 1), mask=mask)
    # tap (i, j) of output row r then reads input row r + i - 1 + 1: a valid conv on x padded 0 rows
    # on top and 2 at the bottom (zeros outside, as the bilinear sampling gives)
    want = 0.5 * F.conv2d(F.pad(x, (1, 1, 0, 2)), weight)
    assert torch.allclose(got, want, atol=1e-5)
    offset = torch.zeros(1, 18, 6, 7)
    offset[:, 1::2] = -1.0  # every tap one column left
    got = deform_conv2d(x, offset, weight, padding=(1, 1), mask=torch.ones(1, 9, 6, 7))
    assert torch.allclose(got, F.conv2d(F.pad(x, (2, 0, 1, 1)), weight), atol=1e-5)


def test_torchvision_vgg19_file_loads_into_net_map(tiny_model):
    features = vgg.make_layers(vgg.cfgs["E"])  # torchvision vgg19().features
    tv = {f"features.{k}": v for k, v in features.state_dict().items()}
    load_into(tiny_model.net_map, tiny_model.checkpoint_filter("vgg19", tv))
    assert torch.equal(tiny_model.net_map.vgg.vgg_net.conv3_1.weight, tv["features.10.weight"])


def test_tags_and_missing_file_message(tmp_path, monkeypatch):
    spec = get_spec("datsr")
    assert spec.tag_names() == ["datsr", "datsr.gan"]
    assert [f.filename for f in spec.tag("gan").files] == ["restoration_gan.pth", "feature_extraction.pth",
                                                          "vgg19-dcbb9e9d.pth"]
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path))
    (tmp_path / "datsr").mkdir()
    for name in ("restoration_mse.pth", "vgg19-dcbb9e9d.pth"):
        (tmp_path / "datsr" / name).write_bytes(b"x")
    with pytest.raises(MissingWeights, match=r"datsr/feature_extraction\.pth.*extractor; published at https"):
        resolve_weights("datsr")


def test_parity_with_official(full_model, parity_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("make_weights", parity_dir / "make_weights.py")
    make_weights = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_weights)
    files = {role: str(make_weights.write(parity_dir / "datsr.json", tmp_path / f"{group}.pth", group))
             for role, group in PARITY_FILES.items()}
    assert len(read_state_dict(files["net_g"])) == 718  # the official file, Swin buffers included
    model = full_model
    load_weights(model, files)  # read (weights_only) -> checkpoint_filter -> strict load
    io = torch.load(parity_dir / "datsr.io.pth", weights_only=True)
    inp, mid = io["inputs"], io["intermediates"]
    probes, hooks = {}, []
    for name in mid["net_g_probes"]:
        def hook(_m, _i, out, name=name):
            probes[name] = out[:, ::8, ::4, ::4].clone()  # before the in-place LeakyReLU that follows
        hooks.append(model.net_g.get_submodule(name).register_forward_hook(hook))
    try:
        with torch.no_grad():
            features = model.extract_features(inp["img_in_up"], inp["img_ref"])
            (pre_offset, pre_flow, pre_sim), ref_feat = model.correspondence(features, inp["img_ref"])
            sr = model.restore(inp["img_in_lq"], [pre_offset, pre_flow, pre_sim], ref_feat)
            model.net_g.content_extractor(inp["img_in_lq"])  # computed-but-unused in the official forward
    finally:
        for h in hooks:
            h.remove()
    assert_intermediates_match({"features": features, "pre_offset": pre_offset, "pre_flow": pre_flow,
                                "pre_similarity": pre_sim, "img_ref_feat": ref_feat, "net_g_probes": probes}, mid)
    assert len(probes) == 22
    assert (sr - io["outputs"]["sr"]).abs().max() <= 1e-4
