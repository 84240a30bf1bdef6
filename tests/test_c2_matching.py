"""C2-Matching: tiny forward, official key/shape fixture, chunked matching, PIL bicubic, parity."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models import vgg

from models import create_model, get_spec
from models.weights import MissingWeights, load_weights, resolve_weights
from models.c2_matching_parts import patch_match_index, torchvision_vgg_to_official
from core.resize import pil_bicubic_tensor

KEYS = Path(__file__).parent / "fixtures" / "keys" / "c2_matching.json"
ROLE_MODULE = {"net_g": "net_g", "extractor": "net_extractor", "vgg19": "net_map"}


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def full_model():
    return create_model("c2_matching").eval()


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return create_model("c2_matching", **get_spec("c2_matching").test_kwargs).eval()


def test_tiny_forward_cpu(tiny_model):
    model = tiny_model
    lr, ref = torch.rand(2, 3, 6, 7), torch.rand(2, 3, 30, 25)  # ref larger in h, smaller in w
    with torch.no_grad():
        out = model(lr, ref)
    assert out.shape == (2, 3, 24, 28)
    assert torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


def test_keys_and_shapes_equal_official(full_model):
    fixture = json.loads(KEYS.read_text())["roles"]
    model = full_model
    for role, attr in ROLE_MODULE.items():
        module = getattr(model, attr)
        assert _shapes(module) == fixture[role]["keys"], role
        assert sum(p.numel() for p in module.parameters()) == fixture[role]["params"], role


def test_chunked_matching_equals_unchunked_and_brute_force():
    torch.manual_seed(1)
    f_in = F.normalize(torch.randn(16, 9, 11), dim=0)
    f_ref = F.normalize(torch.randn(16, 10, 12), dim=0)
    whole = patch_match_index(f_in, f_ref, 3, chunk_elems=1 << 30)
    for chunk in (1, 2000, 5000):  # one row per band, a few rows, uneven last band
        assert torch.equal(patch_match_index(f_in, f_ref, 3, chunk_elems=chunk), whole)
    # the official formulation: reference patches as normalised conv kernels
    patches = f_ref.unfold(1, 3, 1).unfold(2, 3, 1).reshape(16, -1, 3, 3).permute(1, 0, 2, 3)
    patches = patches / (patches.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-5)
    brute = F.conv2d(f_in[None], patches)[0].argmax(0)
    assert torch.equal(whole, brute)


def test_pil_bicubic_is_bit_exact():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    img[1:3] = 255  # saturated rows exercise clipping
    want = np.asarray(Image.fromarray(img).resize((28, 20), Image.BICUBIC))
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    got = (pil_bicubic_tensor(t, (20, 28))[0].permute(1, 2, 0) * 255).round().byte().numpy()
    assert np.array_equal(got, want)


def test_torchvision_vgg19_file_gives_torchvision_features(tiny_model):
    """A torchvision ``vgg19`` state dict, mapped, reproduces torchvision's relu3_1 features."""
    torch.manual_seed(2)
    features = vgg.make_layers(vgg.cfgs["E"]).eval()  # torchvision vgg19().features, no classifier
    tv = {f"features.{k}": v for k, v in features.state_dict().items()}
    model = tiny_model
    model.net_map.load_state_dict(torchvision_vgg_to_official(tv))
    x = torch.rand(1, 3, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        want = features[:12]((x - mean) / std)
        got = model.net_map.vgg(x)["relu3_1"]
    assert torch.allclose(got, want, atol=1e-6)


def test_missing_vgg19_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path))
    for name in ("c2_matching_restoration_mse.pth", "feature_extraction.pth"):
        (tmp_path / "c2_matching").mkdir(exist_ok=True)
        (tmp_path / "c2_matching" / name).write_bytes(b"x")
    with pytest.raises(MissingWeights, match=r"c2_matching/vgg19-dcbb9e9d\.pth.*vgg19; published at https"):
        resolve_weights("c2_matching")


def test_parity_with_official(full_model, parity_dir):
    model = full_model
    load_weights(model, {"net_g": str(parity_dir / "c2_matching_restoration.state_dict.pth"),
                         "extractor": str(parity_dir / "c2_matching_feature_extraction.state_dict.pth"),
                         "vgg19": str(parity_dir / "c2_matching_vgg19_map.state_dict.pth")})
    io = torch.load(parity_dir / "c2_matching.io.pth", weights_only=True)
    inp, mid = io["inputs"], io["intermediate"]
    with torch.no_grad():
        features = model.extract_features(inp["img_in_up"], inp["img_ref"])
        pre_offset, ref_feat = model.correspondence(features, inp["img_ref"])
        sr = model.restore(inp["img_in_lq"], pre_offset, ref_feat)
    for name, ours, theirs in (("features", features, mid["features"]),
                               ("pre_offset", pre_offset, mid["pre_offset"]),
                               ("img_ref_feat", ref_feat, mid["img_ref_feat"])):
        assert set(ours) == set(theirs), name
        for k in ours:
            assert (ours[k] - theirs[k]).abs().max() <= 1e-4, (name, k)
    assert (sr - io["outputs"]["sr"]).abs().max() <= 1e-4
