"""Shards from the launchers people use: torchrun ranks and Slurm array tasks, merged into one folder."""
from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from benchmark import run
from benchmark.results import KEY
from tests.harness_data import make_tiny_dataset

ARGS = ["--models", "bicubic", "--metrics", "psnr_y,ssim_y", "--variants", "clean,shuffle:2", "--no-publish",
        "--no-profile", "--device", "cpu"]


def test_shard_comes_from_the_flag_torchrun_or_slurm():
    assert run.shard_from_launcher("1/3", {"RANK": "0", "WORLD_SIZE": "2"}) == (1, 3)
    assert run.shard_from_launcher(None, {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == (1, 2)
    assert run.shard_from_launcher(None, {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5",
                                          "SLURM_ARRAY_TASK_COUNT": "4"}) == (2, 4)
    assert run.shard_from_launcher(None, {}) == (0, 1)
    with pytest.raises(ValueError, match="shards count from 0"):
        run.shard_from_launcher(None, {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4"})


def test_torchrun_two_ranks_give_the_unsharded_rows(tmp_path):
    ds = make_tiny_dataset(tmp_path / "ds")
    assert run.main([*ARGS, "--datasets", str(ds), "--out", str(tmp_path / "whole")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "benchmark.run", *ARGS, "--datasets", str(ds), "--out", str(tmp_path / "ranks")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    whole = pd.read_parquet(tmp_path / "whole" / "results.parquet")[KEY + ["value"]]
    ranks = pd.read_parquet(tmp_path / "ranks" / "results.parquet")[KEY + ["value"]]
    pd.testing.assert_frame_equal(ranks.sort_values(KEY).reset_index(drop=True),
                                  whole.sort_values(KEY).reset_index(drop=True))
    assert sorted(p.name for p in (tmp_path / "ranks" / "shards").glob("run-*.json")) == [
        "run-0-of-2.json", "run-1-of-2.json"]
    # timings.parquet merges both shards' files; a reference-free model's HR lands in one shard with all
    # its levels and variants, so the shards time exactly the forwards of the unsharded run
    key = ["model", "dataset", "variant", "image", "protocol"]
    merged = pd.read_parquet(tmp_path / "ranks" / "timings.parquet")[key]
    parts = [pd.read_parquet(tmp_path / "ranks" / "shards" / f"timings-{k}-of-2.parquet")[key] for k in (0, 1)]
    assert min(map(len, parts)) > 0
    assert set(map(tuple, merged.values)) == set(map(tuple, pd.concat(parts).values))
    whole_t = pd.read_parquet(tmp_path / "whole" / "timings.parquet")[key]
    assert len(merged) == len(whole_t) and set(map(tuple, whole_t.values)) == set(map(tuple, merged.values))
