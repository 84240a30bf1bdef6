"""TTSR: tiny forward, official key/shape fixture, parity with the official code, chunked matching."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from models import create_model, get_spec
from models.weights import load_weights
from models.ttsr import relevance, transfer

KEYS = Path(__file__).parent / "fixtures" / "keys" / "ttsr.json"


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a shared, loaded CPU two OpenMP threads wait on each other per op."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _uint8_grid(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g).float() / 255


@pytest.mark.parametrize("name", ["ttsr", "ttsr.rec", "ttsr_rec"])
def test_tiny_forward_cpu(name):
    model = create_model(name, **get_spec(name).test_kwargs).eval()
    lr, ref = _uint8_grid(2, 3, 9, 7), _uint8_grid(2, 3, 35, 30, seed=1)  # ref not a multiple of 4
    with torch.no_grad():
        sr = model(lr, ref)
    assert sr.shape == (2, 3, 36, 28)
    assert torch.isfinite(sr).all() and sr.min() >= 0 and sr.max() <= 1


def test_keys_and_shapes_equal_official():
    fixture = json.loads(KEYS.read_text())
    sd = create_model("ttsr").state_dict()
    assert {k: list(v.shape) for k, v in sd.items()} == fixture["keys"]
    n_params = sum(p.numel() for p in create_model("ttsr").parameters())
    assert n_params == fixture["params"] == 6_729_615


def _save(sd, tmp_path):
    torch.save(sd, tmp_path / "full.pth")
    return tmp_path / "full.pth"


def test_full_module_state_dict_with_lte_copy_loads(tmp_path):
    model = create_model("ttsr", **get_spec("ttsr").test_kwargs)
    sd = model.state_dict()
    sd.update({"LTE_copy." + k[len("LTE."):]: v for k, v in sd.items() if k.startswith("LTE.")})
    load_weights(model, {"net": _save(sd, tmp_path)})


def test_parity_with_official(parity_dir):
    model = create_model("ttsr").eval()
    load_weights(model, {"net": parity_dir / "ttsr.state_dict.pth"})  # the loader, unchanged file
    io = torch.load(parity_dir / "ttsr.io.pth", weights_only=True)
    with torch.no_grad():
        sr, S, *_ = model.forward_official(**io["inputs"])
    assert (sr - io["outputs"]["sr"]).abs().max() <= 1e-4
    assert (S - io["outputs"]["S"]).abs().max() <= 1e-4


def test_preprocessing_is_official_pil_bicubic():
    model = create_model("ttsr", **get_spec("ttsr").test_kwargs)
    lr, ref = _uint8_grid(1, 3, 6, 5), _uint8_grid(1, 3, 22, 17, seed=1)
    lr_m, lrsr, ref_m, refsr = model.official_inputs(lr, ref)

    def pil(t, w, h):
        img = Image.fromarray((t[0] * 255).round().byte().permute(1, 2, 0).numpy())
        return img.resize((w, h), Image.BICUBIC)

    expect_lrsr = np.asarray(pil(lr, 20, 24)).astype(np.float32) / 127.5 - 1
    ref_crop = ref[..., :20, :16]
    down = pil(ref_crop, 4, 5)
    expect_refsr = np.asarray(down.resize((16, 20), Image.BICUBIC)).astype(np.float32) / 127.5 - 1
    assert torch.equal(lrsr[0].permute(1, 2, 0), torch.from_numpy(expect_lrsr))
    assert torch.equal(refsr[0].permute(1, 2, 0), torch.from_numpy(expect_refsr))
    assert torch.allclose(ref_m, ref_crop * 2 - 1) and torch.allclose(lr_m, lr * 2 - 1)


def _official_formula(q, k, feats):
    """The paper's Search-Transfer written the direct way: unfold 3x3 patches, cosine, argmax, fold."""
    qu = F.normalize(F.unfold(q[None], 3, padding=1), dim=1)
    ku = F.normalize(F.unfold(k[None], 3, padding=1), dim=1)
    best, arg = torch.max(ku.transpose(1, 2) @ qu, dim=1)
    H, W = q.shape[-2:]
    out = []
    for s, f in zip((1, 2, 4), feats):
        u = F.unfold(f[None], 3 * s, padding=s, stride=s)
        picked = u[:, :, arg[0]]
        out.append(F.fold(picked, (s * H, s * W), 3 * s, padding=s, stride=s)[0] / 9)
    return best.view(H, W), arg.view(H, W), out


def test_search_transfer_matches_direct_formula():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, 7, 5, generator=g), torch.randn(16, 6, 9, generator=g)
    feats = [torch.randn(16, 6, 9, generator=g), torch.randn(8, 13, 19, generator=g),
             torch.randn(4, 26, 38, generator=g)]  # lv2/lv1 one row/col past the 2x/4x grid
    best_ref, arg_ref, t_ref = _official_formula(q, k, feats)
    best, arg = relevance(q, k)
    assert torch.equal(arg, arg_ref)
    assert torch.allclose(best, best_ref, atol=1e-5)
    for s, f, t in zip((1, 2, 4), feats, t_ref):
        assert torch.allclose(transfer(f, arg, s), t, atol=1e-5)


def test_chunked_matching_equals_unchunked():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(32, 11, 13, generator=g), torch.randn(32, 10, 12, generator=g)
    best_all, arg_all = relevance(q, k, chunk_elements=10 ** 9)  # one chunk
    best_chunked, arg_chunked = relevance(q, k, chunk_elements=3 * 13 * 120)  # 3 rows per chunk, remainder 2
    assert torch.equal(arg_chunked, arg_all)
    assert torch.allclose(best_chunked, best_all, atol=1e-6)
