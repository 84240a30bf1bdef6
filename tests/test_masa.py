"""MASA-SR: tiny forward, official key layout, chunking invariance, preprocessing, parity."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import create_model, get_spec
from models.weights import load_weights
from core.resize import pil_bicubic_tensor

KEYS = Path(__file__).parent / "fixtures" / "keys" / "masa.json"


def tiny(**kw):
    torch.manual_seed(0)
    return create_model("masa", **get_spec("masa").test_kwargs, **kw).eval()


def test_tiny_forward_shape_range_and_batch_independence():
    model = tiny()
    lr, ref = torch.rand(2, 3, 16, 24), torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        out = model(lr, ref)
        other_ref = model(lr[:1], ref[1:])
    assert out.shape == (2, 3, 64, 96)
    assert 0 <= out.min() and out.max() <= 1
    assert (out[:1] - other_ref).abs().max() > 1e-4  # the reference is used
    with torch.no_grad():
        torch.testing.assert_close(model(lr[1:], ref[1:]), out[1:], rtol=0, atol=1e-6)


def test_chunked_matching_equals_unchunked():
    model = tiny()
    lr, ref = torch.rand(2, 3, 24, 32), torch.rand(2, 3, 96, 128)
    ref_down = pil_bicubic_tensor(ref, (24, 32))
    with torch.no_grad():
        whole = model.forward_official(lr, ref, ref_down)
        model.chunk_bytes = 1  # one LR block per chunk in both searches
        chunked = model.forward_official(lr, ref, ref_down)
    assert torch.equal(chunked, whole)


def test_sizes_that_do_not_fit_are_refused():
    model = tiny()
    with pytest.raises(ValueError, match="LR sides"):
        model(torch.rand(1, 3, 18, 16), torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="reference too small"):
        model(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 32, 32))


def test_ref_down_matches_pil_bicubic():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (70, 83, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(img).resize((83 // 4, 70 // 4), Image.BICUBIC), dtype=np.float32)
    got = pil_bicubic_tensor(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255, (70 // 4, 83 // 4))
    assert np.array_equal((got[0].permute(1, 2, 0).numpy() * 255).round(), expected)


def test_full_config_has_official_keys_and_param_count():
    fixture = json.loads(KEYS.read_text())
    model = create_model("masa")
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == fixture["keys"]
    assert sum(p.numel() for p in model.parameters()) == fixture["params"] == 4_028_291


def test_parity_with_official_outputs(parity_dir):
    model = create_model("masa").eval()
    load_weights(model, {"net": parity_dir / "masa.state_dict.pth"})
    io = torch.load(parity_dir / "masa.io.pth", weights_only=True)
    with torch.no_grad():
        out = model.forward_official(**io["inputs"])
    assert out.shape == io["outputs"]["sr"].shape
    assert (out - io["outputs"]["sr"]).abs().max().item() <= 1e-4
