"""The harness end to end on a tiny dataset: resume after interruption, failures recorded, publishing."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from benchmark import run
from benchmark.results import ResultStore
from models import registry
from models.base import ModelSpec, RefSRModel
from tests.harness_data import make_tiny_dataset

ARGS = ["--models", "bicubic", "--variants", "clean,shuffle:2", "--metrics", "psnr_y,ssim_y,psnr_rgb",
        "--protocol", "refsr-standard", "--device", "cpu", "--no-publish"]


@pytest.fixture
def tiny(tmp_path):
    return make_tiny_dataset(tmp_path / "tiny")


def _results(run_dir):
    df = pd.read_parquet(run_dir / "results.parquet")
    return df.drop(columns=["git_sha"])


def test_interrupted_run_resumes_to_identical_rows(tiny, tmp_path, monkeypatch):
    full = tmp_path / "full"
    assert run.main([*ARGS, "--datasets", str(tiny), "--out", str(full)]) == 0
    expected = _results(full)
    assert len(expected) == 3 * 2 * 2 * 3  # groups × levels × variants × metrics

    broken = tmp_path / "broken"
    real_flush, calls = ResultStore.flush, {"n": 0}

    def dying_flush(self):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # killed part-way, after three images were written
        real_flush(self)

    monkeypatch.setattr(ResultStore, "flush", dying_flush)
    with pytest.raises(KeyboardInterrupt):
        run.main([*ARGS, "--datasets", str(tiny), "--out", str(broken)])
    monkeypatch.setattr(ResultStore, "flush", real_flush)
    assert len(ResultStore(broken).load()) == 3 * 3
    assert run.main([*ARGS, "--datasets", str(tiny), "--out", str(broken)]) == 0
    pd.testing.assert_frame_equal(_results(broken), expected)
    # a third run finds nothing to do and changes nothing
    assert run.main([*ARGS, "--datasets", str(tiny), "--out", str(broken)]) == 0
    pd.testing.assert_frame_equal(_results(broken), expected)


class _Flaky(RefSRModel):
    """Raises on its first image, returns NaN on its second, works after that."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, lr, ref):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("simulated failure")
        sr = torch.nn.functional.interpolate(lr, scale_factor=4)
        return sr * float("nan") if self.calls == 2 else sr


@pytest.fixture
def flaky_model():
    spec = ModelSpec(name="test_flaky")
    registry.register_model(spec)(lambda **kw: _Flaky())
    yield "test_flaky"
    registry.MODELS.remove("test_flaky")


def test_failures_are_rows_with_reasons_and_the_run_goes_on(tiny, tmp_path, flaky_model):
    out = tmp_path / "r"
    assert run.main(["--models", "test_flaky,bicubic", "--datasets", str(tiny), "--out", str(out), "--device", "cpu",
                     "--metrics", "psnr_y", "--no-publish"]) == 0
    df = pd.read_parquet(out / "results.parquet")
    assert (df[df["model"] == "bicubic"]["status"] == "ok").all()
    flaky = df[df["model"] == "test_flaky"].groupby("image")
    reasons = sorted(g["reason"].iloc[0] for _, g in flaky)
    assert sum("simulated failure" in r for r in reasons) == 1
    assert sum("NaN" in r for r in reasons) == 1
    assert sum(r == "" for r in reasons) == 4  # the other images were scored


def test_model_without_weights_is_not_scored(tiny, tmp_path, monkeypatch):
    from models.base import CheckpointFile, WeightTag

    spec = ModelSpec(name="test_needs_weights",
                     tags=(WeightTag("", (CheckpointFile("net.pth", url="https://example.org"),)),))
    registry.register_model(spec)(lambda **kw: _Flaky())
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path / "weights"))
    try:
        out = tmp_path / "r"
        assert run.main(["--models", "test_needs_weights,bicubic", "--datasets", str(tiny), "--out", str(out),
                         "--device", "cpu", "--metrics", "psnr_y", "--no-publish"]) == 0
        df = pd.read_parquet(out / "results.parquet")
        assert set(df["model"]) == {"bicubic"}
        info = json.loads((out / "run.json").read_text())
        why = info["unavailable_models"]["test_needs_weights"]
        assert "missing weight file" in why and "net.pth" in why and "https://example.org" in why
    finally:
        registry.MODELS.remove("test_needs_weights")


def test_publish_writes_tables_and_plots(tiny, tmp_path):
    out = tmp_path / "r"
    boards = tmp_path / "boards"
    assert run.main(["--models", "bicubic", "--datasets", str(tiny), "--out", str(out), "--device", "cpu",
                     "--variants", "clean,lr", "--metrics", "psnr_y,ssim_y", "--leaderboards", str(boards)]) == 0
    folder = boards
    for name in ("headline.csv", "per_level.csv", "robustness.csv", "protocol_drift.csv", "README.md",
                 "psnr_by_level.png", "robustness.png", "quality_vs_runtime.png"):
        assert (folder / name).is_file(), name
    head = pd.read_csv(folder / "headline.csv")
    assert head.loc[0, "images"] == 3 and 15 < head.loc[0, "psnr_y"] < 60


def test_dry_run_and_listing(capsys):
    assert run.main(["--suite", "robustness", "--dry-run", "--models", "bicubic"]) == 0
    out = capsys.readouterr().out
    assert "shuffle:8" in out and "bicubic" in out
    assert run.main(["--list-models"]) == 0
    assert "bicubic" in capsys.readouterr().out


def test_bad_suite_input_is_a_clear_error(capsys):
    assert run.main(["--suite", "demo", "--models", "bicubik", "--dry-run"]) == 2
    assert "did you mean bicubic" in capsys.readouterr().err


def test_shards_into_one_folder_give_the_unsharded_rows(tiny, tmp_path):
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert run.main([*ARGS, "--datasets", str(tiny), "--out", str(whole)]) == 0
    for k in range(3):
        assert run.main([*ARGS, "--datasets", str(tiny), "--out", str(sharded), "--shard", f"{k}/3"]) == 0
        if k == 0:
            assert 0 <= len(_results(sharded)) < len(_results(whole))  # a shard scores only its share
    pd.testing.assert_frame_equal(_results(sharded), _results(whole))
    assert run.main([*ARGS, "--datasets", str(tiny), "--out", str(sharded), "--shard", "3/3"]) == 2

