"""Your own work without editing the repository: an unregistered nn.Module or a plain function through
benchmark.evaluate and --model-module gives the registered copy's rows; --save-sr then
benchmark.score reproduces a run's rows from the saved images."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import benchmark
from benchmark import run, score
from core.resize import imresize_tensor
from models.bicubic import Bicubic
from tests.harness_data import make_tiny_dataset

METRICS = ["psnr_y", "ssim_y", "psnr_rgb"]
KEY = ["dataset", "split", "variant", "level", "image", "protocol", "metric"]


def bicubic_function(lr, ref):
    return imresize_tensor(lr, 4).clamp(0, 1)


def my_module():  # the factory --model-module calls
    return Bicubic()


def my_function():
    return bicubic_function


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("ds") / "tiny")


def _values(df):
    return df.set_index(KEY)["value"].sort_index()


def test_unregistered_module_and_function_give_the_registered_rows(tiny, tmp_path):
    common = dict(metrics=METRICS, variants=["clean", "lr"], device="cpu")
    registered = benchmark.evaluate("bicubic", str(tiny), **common)
    module = benchmark.evaluate(Bicubic(), str(tiny), name="my_bicubic", **common)
    function = benchmark.evaluate(bicubic_function, str(tiny), **common)
    assert len(registered) == 3 * 2 * 2 * len(METRICS) and (registered["status"] == "ok").all()
    pd.testing.assert_series_equal(_values(module), _values(registered))
    pd.testing.assert_series_equal(_values(function), _values(registered))
    assert set(module["model"]) == {"my_bicubic"} and set(function["model"]) == {"bicubic_function"}
    assert set(module["weights"]) == {"custom"}

    out = tmp_path / "cli"
    assert run.main(["--model-module", "tests.test_own_model:my_module,tests.test_own_model:my_function",
                     "--models", "bicubic", "--datasets", str(tiny), "--metrics", ",".join(METRICS),
                     "--variants", "clean,lr", "--out", str(out), "--no-publish", "--no-profile"]) == 0
    cli = pd.read_parquet(out / "results.parquet")
    for name in ("bicubic", "my_module", "my_function"):
        pd.testing.assert_series_equal(_values(cli[cli["model"] == name]), _values(registered))


def test_saved_sr_images_score_to_the_same_rows(tiny, tmp_path):
    torch.manual_seed(0)
    out = tmp_path / "run"
    assert run.main(["--models", "texture_transfer", "--datasets", str(tiny), "--metrics", ",".join(METRICS + ["lpips"]),
                     "--out", str(out), "--save-sr", "--no-publish", "--no-profile"]) == 0
    rows = pd.read_parquet(out / "results.parquet")
    saved = out / "sr" / "texture_transfer" / "tiny" / "clean"
    assert len(list(saved.glob("*.png"))) == rows["image"].nunique() == 6
    assert score.main(["--sr", str(saved), "--dataset", str(tiny), "--name", "texture_transfer",
                       "--metrics", ",".join(METRICS + ["lpips"]), "--out", str(tmp_path / "scored")]) == 0
    again = pd.read_parquet(tmp_path / "scored" / "results.parquet")
    assert set(again["weights"]) == {"precomputed"} and (again["status"] == "ok").all()
    pd.testing.assert_series_equal(_values(again), _values(rows))
