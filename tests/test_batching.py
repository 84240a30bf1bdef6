"""Batches of same-size inputs (``--batch-size``, models whose spec says ``batchable``) give batch-1 results;
forwards are timed by ``ForwardTimer`` (CUDA events on a GPU, ``perf_counter`` here) and profiles say how
they timed and measured memory."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark import run
from benchmark.device import ForwardTimer
from benchmark.evaluation import run_model
from benchmark.results import KEY
from models import create_model, get_spec, list_models
from tests.harness_data import make_tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", [n for n in list_models() if get_spec(n).batchable])
def test_a_batch_equals_one_image_at_a_time(name):
    model = create_model(name, **get_spec(name).test_kwargs).eval()
    rng = np.random.default_rng(0)
    lrs = [rng.integers(0, 256, (20, 28, 3), dtype=np.uint8) for _ in range(3)]
    refs = [rng.integers(0, 256, (80, 96, 3), dtype=np.uint8) for _ in range(3)]
    batch, _ = run_model(model, lrs, refs, torch.device("cpu"))
    single = torch.cat([run_model(model, lr, ref, torch.device("cpu"))[0] for lr, ref in zip(lrs, refs)])
    assert batch.shape == (3, 3, 80, 112) and torch.equal(batch, single)


def test_harness_batches_give_the_batch_1_rows(tmp_path):
    ds = make_tiny_dataset(tmp_path / "ds", groups=3, levels=2, size=32)
    args = ["--models", "texture_transfer", "--datasets", str(ds), "--metrics", "psnr_y,ssim_y",
            "--variants", "clean", "--no-profile", "--no-publish", "--device", "cpu"]
    assert run.main([*args, "--out", str(tmp_path / "one")]) == 0
    assert run.main([*args, "--out", str(tmp_path / "four"), "--batch-size", "4"]) == 0
    one, four = (pd.read_parquet(tmp_path / d / "results.parquet")[KEY + ["value", "status"]] for d in ("one", "four"))
    pd.testing.assert_frame_equal(four, one)
    assert (one["status"] == "ok").all()
    assert pd.read_parquet(tmp_path / "four" / "timings.parquet")["batch"].max() == 4


def test_cpu_forward_timer_measures_the_block():
    with ForwardTimer(torch.device("cpu")) as timer:
        time.sleep(0.05)
    assert timer.kind == "perf_counter" and 0.05 <= timer.seconds < 1.0


def test_cpu_profile_says_how_it_timed_and_measured_memory():
    import queue

    from benchmark.profile import CPU_PEAK, CPU_PEAK_FALLBACK, _cpu_peak_child, profile_model

    prof = profile_model("bicubic", torch.device("cpu"), (16, 16), (64, 64), warmup=1, runs=2, measure_memory=False)
    assert prof.runtime_timer == "perf_counter" and prof.runs == 2 and prof.runtime_min_s > 0
    q = queue.Queue()  # what the fresh process reports, run here: (MB, how it was measured)
    _cpu_peak_child("bicubic", {}, (1, 3, 16, 16), (1, 3, 64, 64), q)
    mb, measure = q.get_nowait()
    assert measure in (CPU_PEAK, CPU_PEAK_FALLBACK) and mb >= 0
