"""Precision and devices are explicit: fp32 turns TF32 off (flags read back), the precision is in
every row and in run.json, and a device that is not here is a one-line error."""
from __future__ import annotations

import json

import pandas as pd
import torch

from benchmark import run
from benchmark.device import set_precision
from tests.harness_data import make_tiny_dataset


def test_fp32_turns_tf32_off_and_tf32_on():
    try:
        flags = set_precision("tf32")
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32 and flags["cudnn.allow_tf32"]
        flags = set_precision("fp32")
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert flags == {"cuda.matmul.allow_tf32": False, "cudnn.allow_tf32": False,
                         "float32_matmul_precision": "highest"}
    finally:
        set_precision("fp32")


def test_precision_is_recorded_in_rows_and_run_json(tmp_path):
    ds = make_tiny_dataset(tmp_path / "ds", groups=1, levels=1)
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        assert run.main(["--models", "bicubic", "--datasets", str(ds), "--metrics", "psnr_y", "--precision", precision,
                         "--out", str(out), "--no-publish", "--no-profile", "--device", "cpu"]) == 0
        df = pd.read_parquet(out / "results.parquet")
        assert set(df["dtype"]) == {precision} and (df["status"] == "ok").all()
        info = json.loads((out / "run.json").read_text())
        assert info["precision"] == precision and info["precision_flags"]["cudnn.allow_tf32"] is False
    set_precision("fp32")


def test_missing_device_is_a_clear_error(tmp_path, capsys):
    ds = make_tiny_dataset(tmp_path / "ds", groups=1, levels=1)
    device = "cuda:7" if torch.cuda.device_count() < 8 else "cuda:99"
    assert run.main(["--models", "bicubic", "--datasets", str(ds), "--device", device, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda") and "Traceback" not in err
