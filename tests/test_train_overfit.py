"""scripts/train_overfit.py: the check's start for a ZERO_OUTPUT model (DATSR, SSMTF)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

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
