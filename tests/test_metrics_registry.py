"""Metric registry, availability reasons, and the optional pyiqa path (never random weights)."""
from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest
import torch

import benchmark.metrics.iqa as iqa
from benchmark.metrics import (MetricUnavailable, availability, create_metric, get_metric, list_metrics,
                               metric_info)
from benchmark.protocol import load_protocol


def test_table_builds_every_metric_with_its_declared_direction():
    assert {"psnr_y", "ssim_y", "psnr_rgb", "lpips", "musiq", "maniqa"} <= set(list_metrics())
    for name in list_metrics():
        m = create_metric(name, device="cpu")
        assert m.name == name and m.device == torch.device("cpu")
    assert create_metric("psnr_y").space == "y" and create_metric("psnr_rgb").space == "rgb"
    assert not create_metric("lpips").higher_is_better and create_metric("musiq").higher_is_better
    assert get_metric("psnr_y", "cpu") is get_metric("psnr_y", "cpu")


def test_bad_names_and_options_are_clear():
    with pytest.raises(KeyError, match="unknown metric 'psnr_z'"):
        create_metric("psnr_z")
    with pytest.raises(TypeError, match="no option.*'sigmaa'"):
        create_metric("ssim_y", sigmaa=1.0)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        create_metric("psnr_y", device="cpu")(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_batched_call_returns_float64_per_image_on_cpu():
    x = torch.rand(3, 1, 16, 16) * 255
    v = create_metric("psnr_y", device="cpu")(x, x + 1)
    assert v.dtype == torch.float64 and v.shape == (3,)
    assert torch.allclose(v, torch.full((3,), 10 * torch.log10(torch.tensor(255.0 ** 2)).item(), dtype=torch.float64))


def test_pyiqa_missing_means_unavailable_not_a_number(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(iqa.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyiqa" else real_find_spec(name, *a))
    for name in ("musiq", "maniqa"):
        ok, reason = create_metric(name, device="cpu").available()
        assert not ok and reason.startswith("unavailable (pyiqa not installed")
        with pytest.raises(MetricUnavailable, match="pyiqa not installed"):
            create_metric(name, device="cpu")(torch.rand(1, 3, 32, 32) * 255)
    assert availability(["psnr_y"], "cpu") == {"psnr_y": (True, "")}
    hr = (torch.rand(40, 40, 3) * 255).round().to(torch.uint8).numpy()
    with pytest.raises(MetricUnavailable):
        load_protocol("refsr-standard").score(hr.astype(float), hr, metrics=["psnr_y", "musiq"], device="cpu")


class _TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.head(x.mean(dim=(2, 3)))


def _fake_pyiqa(monkeypatch, calls):
    """A stand-in `pyiqa` module recording how the wrapper constructs its network."""
    module = types.ModuleType("pyiqa")

    def create_metric(name, device=None, **kwargs):
        calls.append((name, kwargs))
        wrapper = torch.nn.Module()
        wrapper.net = _TinyNet()
        wrapper.forward = lambda x: wrapper.net(x)
        return wrapper

    module.create_metric = create_metric
    module.__spec__ = importlib.machinery.ModuleSpec("pyiqa", None)
    monkeypatch.setitem(sys.modules, "pyiqa", module)
    iqa._build.cache_clear()


def test_pyiqa_weights_folder_from_env_and_argument(monkeypatch, tmp_path):
    calls = []
    _fake_pyiqa(monkeypatch, calls)
    monkeypatch.setenv(iqa.IQA_WEIGHTS_ENV, str(tmp_path / "env"))
    metric = create_metric("musiq", device="cpu")
    ok, reason = metric.available()
    assert not ok and "musiq_koniq_ckpt-e95806b9.pth not found in" in reason and str(tmp_path / "env") in reason
    with pytest.raises(MetricUnavailable):
        metric(torch.rand(1, 3, 8, 8) * 255)
    assert calls == []  # nothing was built, so nothing could score with random weights

    trained = _TinyNet()
    torch.nn.init.constant_(trained.head.weight, 2.0)
    torch.nn.init.constant_(trained.head.bias, -1.0)
    folder = tmp_path / "arg"
    folder.mkdir()
    torch.save({"params": trained.state_dict()}, folder / "musiq_koniq_ckpt-e95806b9.pth")
    metric = create_metric("musiq", device="cpu", weights_dir=folder)
    assert metric.available() == (True, "")
    assert calls == [("musiq", {"pretrained": False, "pretrained_model_path": None})]
    x = torch.full((2, 3, 8, 8), 127.5)
    torch.testing.assert_close(metric(x), torch.full((2,), 2.0, dtype=torch.float64))  # 3 * 2 * 0.5 - 1


def test_pyiqa_checkpoint_that_does_not_fit_is_unavailable(monkeypatch, tmp_path):
    _fake_pyiqa(monkeypatch, [])
    torch.save({"params": {"other.weight": torch.zeros(1)}}, tmp_path / "ckpt_koniq10k.pt")
    ok, reason = create_metric("maniqa", device="cpu", weights_dir=tmp_path).available()
    assert not ok and reason.startswith("unavailable (CheckpointError")
    assert set(metric_info("maniqa").defaults) == {"pyiqa_name", "weights_file"}


def test_musiq_matches_calibration_when_pyiqa_and_weights_are_present(shared_data):
    """Runs only where `make iqa` and the MUSIQ-KonIQ weights are installed. pyiqa's own
    calibration table reports up to 1.09 points between its MUSIQ and the original, hence 1.5."""
    import csv

    import numpy as np
    from PIL import Image

    metric = create_metric("musiq", device="cpu")
    ok, reason = metric.available()
    if not ok:
        pytest.skip(f"musiq {reason}")
    folder = shared_data / "iqa_calibration"
    for row in csv.DictReader(open(folder / "expected.csv")):
        if row["metric"] == "musiq_koniq":
            img = np.asarray(Image.open(folder / "dist" / f"{row['image']}.png").convert("RGB"))
            value = metric(torch.tensor(img).permute(2, 0, 1)[None].double()).item()
            assert value == pytest.approx(float(row["official"]), abs=1.5), row
