"""Reports people use: intervals, paired differences, reference use, footnotes, the side-by-side figure."""
from __future__ import annotations

import json

import pandas as pd

from benchmark import run
from tests.harness_data import make_tiny_dataset


def test_published_run_has_intervals_paired_differences_ref_use_and_a_figure(tmp_path):
    ds = make_tiny_dataset(tmp_path / "ds")
    out = tmp_path / "run"
    assert run.main(["--models", "bicubic,texture_transfer", "--datasets", str(ds), "--variants", "clean,lr",
                     "--metrics", "psnr_y,ssim_y,musiq", "--save-sr", "--out", str(out), "--no-profile"]) == 0
    board = out / "leaderboard"
    agg = json.loads((board / "results.json").read_text())["aggregates"]
    tt = next(a for a in agg if a["model"] == "texture_transfer" and a["metric"] == "psnr_y"
              and a["variant"] == "clean" and a["level"] == 1)
    assert tt["images"] == 3 and tt["ci95_low"] <= tt["mean"] <= tt["ci95_high"]
    per_level = pd.read_csv(board / "per_level.csv").set_index("model")
    assert abs(per_level.loc["texture_transfer", "ref_use"]
               - (per_level.loc["texture_transfer", "L1"] - per_level.loc["texture_transfer", "LR-as-ref"])) < 1e-9
    assert abs(per_level.loc["bicubic", "ref_use"]) < 1e-9  # a model that ignores its reference gains nothing
    paired = pd.read_csv(board / "paired.csv").iloc[0]
    assert (paired["model_a"], paired["model_b"]) == ("bicubic", "texture_transfer") and paired["n"] == 3
    readme = (board / "README.md").read_text()
    assert "PSNR-Y (dB) ↑" in readme and "[1] musiq: unavailable" in readme and "unavailable (" not in readme.split("[1]")[0]
    assert (board / "qualitative.png").stat().st_size > 10_000 and "qualitative.png" in readme
