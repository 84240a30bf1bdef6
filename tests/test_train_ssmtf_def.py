"""benchmark.train for SSMTF (MSE, GAN) and DEF's texture-transfer network: one training step of each
recipe's losses, the export (official SSMTF format; DEF's documented format) and its reload through
models.weights.resolve_weights; the differentiable selective scan; DEF's ImageNet VGG19 extractor."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn

from benchmark.training import load_recipe, train
from benchmark.training.losses import VGG19_FILE, load_vgg19_into
from models import create_model, get_spec
from models import selective_scan as scan_ops
from models.weights import load_weights, resolve_weights
from tests.train_data import make_train_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"crop_size": 32, "ref_size": 32, "validate_every": 0, "init_from": None, "iterations": 1, "batch_size": 2}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_train_dataset(tmp_path_factory.mktemp("train") / "ds", n_train=2, size=64)


def _vgg19_file(path) -> dict:
    """A random VGG19 file with torchvision's keys, layers up to relu3_1 (the real one is never downloaded)."""
    torch.manual_seed(7)
    feats = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])[:12]
    sd = {f"features.{k}": v for k, v in feats.state_dict().items()}
    torch.save(sd, path)
    return sd


def _setup(name: str, tmp_path, monkeypatch):
    """$REFSR_WEIGHTS with stand-ins of the frozen official files and of the ImageNet VGG19; the recipe's
    losses, all from the first step, but the perceptual one (its VGG19 up to relu5_1 is 80 MB; the loss
    class is the other GAN recipes', tested in test_train_losses.py)."""
    arch = get_spec(name).name
    tiny = get_spec(arch).test_kwargs
    monkeypatch.setattr("benchmark.training.trainer.plot_curves", lambda *a: None)  # matplotlib: slow, tested elsewhere
    weights = tmp_path / "weights"
    (weights / arch).mkdir(parents=True)
    monkeypatch.setenv("REFSR_WEIGHTS", str(weights))
    torch.manual_seed(1)
    official = create_model(name, **tiny)
    files = {c.role: c.filename for c in get_spec(arch).tag(name.partition(".")[2]).files}
    for role in files:
        if role != "net_g":
            torch.save(official.checkpoint_modules()[role].state_dict(), weights / arch / files[role])
    vgg = _vgg19_file(weights / VGG19_FILE)
    # every loss of the recipe counts from the first step (the GAN terms start late in the recipes)
    losses = [{k: v for k, v in s.items() if k != "after"} for s in load_recipe(name)["losses"]]
    over = {**FAST, "losses": [s for s in losses if s["type"] != "perceptual"]}
    return tiny, official, files, vgg, over


@pytest.mark.parametrize("name", ["ssmtf", "ssmtf.gan"])
def test_ssmtf_trains_net_g_and_writes_the_official_file(dataset, tmp_path, monkeypatch, name):
    """net_g trains (Adam groups by offset/small/medium as the official trainer); the extractor and VGG19
    stay the official files; the export is net_g's plain state_dict under the official file name."""
    tiny, official, files, _, over = _setup(name, tmp_path, monkeypatch)
    out = tmp_path / "run"
    res = train(name, dataset, out, overrides=over, model_kwargs=tiny, progress=False, val_limit=0, device="cpu",
                log_every=1)
    assert set(res["weights"]["files"]) == {files["net_g"]}
    sd = torch.load(out / files["net_g"], map_location="cpu", weights_only=True)
    assert set(sd) == set(official.net_g.state_dict())  # the official keys, no wrapper
    resolved = resolve_weights(name, out)
    assert resolved.label.startswith(f"trained:{res['run_id']}@")
    model = create_model(name, **tiny)
    load_weights(model, resolved.files)
    for role in ("extractor", "vgg19"):
        a, b = model.checkpoint_modules()[role].state_dict(), official.checkpoint_modules()[role].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(v, official.net_g.state_dict()[k]) for k, v in model.net_g.state_dict().items())
    ckpt = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert sorted(g["lr"] for g in ckpt["optimizer"]["param_groups"]) == [1e-6, 1e-5, 1e-4, 1e-4]
    vals = dict(zip(*[line.split(",") for line in (out / "log.csv").read_text().splitlines()[:2]]))
    assert float(vals["l1"]) > 0
    if name == "ssmtf.gan":
        assert vals["d_loss"] != "" and vals["adversarial"] != ""


def test_def_trains_the_texture_network_on_the_enhanced_image(dataset, tmp_path, monkeypatch):
    """DEF: only net_g trains; its extractor starts from the ImageNet VGG19 file (vgg19_init) and stays
    fixed; the denoiser stays its official file; the export (def_texture_transfer.pth, our format: net_g's
    plain state_dict) reloads through resolve_weights."""
    tiny, official, files, vgg, over = _setup("def", tmp_path, monkeypatch)
    out = tmp_path / "run"
    res = train("def", dataset, out, overrides=over, model_kwargs=tiny, progress=False, val_limit=0, device="cpu",
                log_every=1)
    assert set(res["weights"]["files"]) == {"def_texture_transfer.pth"}
    model = create_model("def", **tiny)
    load_weights(model, resolve_weights("def", out).files)
    lte = model.net_g.LTE.state_dict()
    for key in ("slice1.0.weight", "slice2.2.bias", "slice2.5.weight", "slice3.7.weight", "slice3.10.bias"):
        n, kind = key.split(".")[-2:]
        assert torch.equal(lte[key], vgg[f"features.{n}.{kind}"])  # ImageNet init, unchanged by the step
    assert torch.equal(lte["sub_mean.weight"], official.net_g.LTE.state_dict()["sub_mean.weight"])
    a, b = model.denoiser.state_dict(), official.denoiser.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    moved = [not torch.equal(v, official.net_g.state_dict()[k]) for k, v in model.net_g.state_dict().items()
             if k.startswith("MainNet.")]
    assert any(moved)
    init = json.loads((out / "run.json").read_text())["init_from"]["vgg19_init"]["net_g.LTE"]
    assert init["path"].endswith(VGG19_FILE) and len(init["sha256"]) == 64
    vals = dict(zip(*[line.split(",") for line in (out / "log.csv").read_text().splitlines()[:2]]))
    assert float(vals["l1"]) > 0 and vals["d_loss"] != "" and vals["adversarial"] != ""


def test_load_vgg19_into_needs_every_indexed_layer(tmp_path):
    sd = _vgg19_file(tmp_path / VGG19_FILE)
    net = nn.Sequential()
    net.add_module("0", nn.Conv2d(3, 64, 3, 1, 1))
    net.add_module("1", nn.ReLU())
    net.add_module("2", nn.Conv2d(64, 64, 3, 1, 1))
    assert load_vgg19_into(net, str(tmp_path / VGG19_FILE)) == tmp_path / VGG19_FILE
    assert torch.equal(net[2].weight, sd["features.2.weight"]) and torch.equal(net[0].bias, sd["features.0.bias"])
    wrong = nn.Sequential(nn.Conv2d(3, 8, 3))  # features.0 is 64 x 3 x 3 x 3
    with pytest.raises(ValueError, match="features.0.weight"):
        load_vgg19_into(wrong, str(tmp_path / VGG19_FILE))


def _scan_inputs(dtype, b=2, d=8, n=4, length=37, groups=2):
    g = torch.Generator().manual_seed(1)

    def mk(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_()

    a = (-4 * torch.rand(d, n, generator=g, dtype=dtype)).requires_grad_()
    return [mk(b, d, length), mk(b, d, length), a, mk(b, groups, n, length), mk(b, groups, n, length), mk(d),
            mk(b, d, length), mk(d)]


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_differentiable_scan_matches_the_per_step_loop_and_its_gradients(dtype, tol):
    """selective_scan_grad (training without mamba-ssm) = the per-step definition, values and gradients of
    every input (u, delta, A, B, C, D, z, delta_bias), in float64 to 1e-12 and float32 to 1e-5 relative."""
    xs = _scan_inputs(dtype)
    ys = [x.detach().clone().requires_grad_() for x in xs]
    o1, h1 = scan_ops.selective_scan_ref(*xs, delta_softplus=True, return_last_state=True)
    o2, h2 = scan_ops.selective_scan_grad(*ys, delta_softplus=True, return_last_state=True)
    assert torch.allclose(o1, o2, rtol=tol, atol=tol) and torch.allclose(h1, h2, rtol=tol, atol=tol)
    w = torch.randn(o1.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    (o1 * w).sum().backward()
    (o2 * w).sum().backward()
    for a, b in zip(xs, ys):
        assert (a.grad - b.grad).abs().max() <= tol * a.grad.abs().max()


@pytest.mark.parametrize("b_shape, c_shape", [((2, 3, 4, 300), (2, 6, 4, 300)),  # B by 3 groups, C by 6
                                              ((2, 4, 300), (12, 4))])  # B shared by all channels, C fixed
def test_differentiable_scan_many_chunks_other_layouts_and_final_state(b_shape, c_shape):
    """selective_scan_grad over 19 chunks of 16 steps (the last one padded), with B and C grouped differently,
    shared or fixed, and a loss on the final state too: values and gradients = the per-step loop (float64)."""
    g = torch.Generator().manual_seed(4)

    def mk(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()

    xs = [mk(2, 12, 300), mk(2, 12, 300), (-6 * torch.rand(12, 4, generator=g, dtype=torch.float64)).requires_grad_(),
          mk(*b_shape), mk(*c_shape), mk(12), None, mk(12)]
    ys = [x.detach().clone().requires_grad_() if x is not None else None for x in xs]
    w = torch.randn(2, 12, 300, generator=g, dtype=torch.float64)
    wl = torch.randn(2, 12, 4, generator=g, dtype=torch.float64)
    for fn, ins in ((scan_ops.selective_scan_ref, xs), (scan_ops.selective_scan_grad, ys)):
        kw = {"max_chunk": 16} if fn is scan_ops.selective_scan_grad else {}
        out, last = fn(*ins, delta_softplus=True, return_last_state=True, **kw)
        ((out * w).sum() + (last * wl).sum()).backward()
    o1, l1 = scan_ops.selective_scan_ref(*xs, delta_softplus=True, return_last_state=True)
    o2, l2 = scan_ops.selective_scan_grad(*ys, delta_softplus=True, return_last_state=True, max_chunk=16)
    torch.testing.assert_close(o2, o1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(l2, l1, rtol=1e-12, atol=1e-12)
    for a, b in zip(xs, ys):
        if a is not None:
            assert (a.grad - b.grad).abs().max() <= 1e-12 * a.grad.abs().max()


def test_auto_backend_is_differentiable_only_when_a_gradient_is_needed():
    xs = _scan_inputs(torch.float32)
    with torch.no_grad():
        scan_ops.selective_scan(*xs, delta_softplus=True)
    assert scan_ops.LAST_BACKEND == "chunked"
    scan_ops.selective_scan(*xs, delta_softplus=True).sum().backward()
    assert scan_ops.LAST_BACKEND == "grad" and xs[0].grad is not None
