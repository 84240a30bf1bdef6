import pytest
import torch

from models import create_model, list_models
from models.checkpoint import CheckpointError, describe_mismatch, load_into, unwrap


def test_bicubic_registered_and_runs():
    assert "bicubic" in list_models()
    m = create_model("bicubic")
    out = m(torch.rand(1, 3, 8, 10), torch.rand(1, 3, 32, 40))
    assert out.shape == (1, 3, 32, 40)
    assert 0 <= out.min() and out.max() <= 1


def test_unknown_model_suggests_close_name():
    with pytest.raises(KeyError, match="did you mean bicubic"):
        create_model("bicubik")


def test_unwrap_strips_wrappers_and_module_prefix():
    sd = {"params_ema": {"module.conv.weight": torch.zeros(1)}}
    assert list(unwrap(sd)) == ["conv.weight"]


def test_strict_load_reports_diff(tmp_path):
    net = torch.nn.Conv2d(3, 4, 3)
    bad = {"weight": torch.zeros(4, 3, 1, 1), "extra": torch.zeros(1)}
    torch.save(bad, tmp_path / "x.pth")
    with pytest.raises(CheckpointError) as e:
        load_into(net, tmp_path / "x.pth")
    msg = str(e.value)
    assert "missing" in msg and "bias" in msg and "unexpected" in msg and "shape mismatch" in msg
    assert describe_mismatch(net.state_dict(), net.state_dict()) == ""
