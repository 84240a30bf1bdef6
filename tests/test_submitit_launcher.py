"""``--launcher``: the shards as a submitit job array (its local executor here), merged, published once."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmark import run
from benchmark.launch import parse_options, task_argv
from benchmark.results import KEY
from tests.harness_data import make_tiny_dataset

ARGS = ["--models", "bicubic", "--metrics", "psnr_y,ssim_y", "--variants", "clean,shuffle:2", "--no-profile",
        "--device", "cpu"]


def test_task_command_drops_the_launcher_options():
    argv = ["--suite", "demo", "--launcher", "slurm", "--shards=4", "--slurm", "timeout_min=5", "--out", "x"]
    assert task_argv(argv, Path("/r")) == ["--suite", "demo", "--out", "/r", "--no-publish"]
    assert parse_options("slurm_partition=gpu,gpus_per_node=1") == {"slurm_partition": "gpu", "gpus_per_node": 1}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options("gpu")


def test_local_executor_array_gives_the_unsharded_rows(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the tasks import this checkout's benchmark
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ds = make_tiny_dataset(tmp_path / "ds")
    assert run.main([*ARGS, "--no-publish", "--datasets", str(ds), "--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "array"
    assert run.main([*ARGS, "--datasets", str(ds), "--out", str(out), "--launcher", "local", "--shards", "2"]) == 0
    whole = pd.read_parquet(tmp_path / "whole" / "results.parquet")[KEY + ["value"]]
    array = pd.read_parquet(out / "results.parquet")[KEY + ["value"]]
    pd.testing.assert_frame_equal(array.sort_values(KEY).reset_index(drop=True),
                                  whole.sort_values(KEY).reset_index(drop=True))
    assert sorted(p.name for p in (out / "shards").glob("run-*.json")) == ["run-0-of-2.json", "run-1-of-2.json"]
    assert (out / "leaderboard" / "README.md").is_file() and any((out / "submitit").rglob("*_log.out"))
