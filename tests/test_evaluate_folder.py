"""Evaluate any folder: Set5 imported with the folder importer, bicubic under ``basicsr``,
through the CLI, reproduces the published SISR figure (../shared/data/README.md)."""
from __future__ import annotations

import pandas as pd

from benchmark import run
from builders.importers import import_layout


def test_bicubic_set5_basicsr_matches_published(shared_data, tmp_path, capsys):
    ds = tmp_path / "Set5"
    import_layout("folder", shared_data / "sr_benchmarks" / "Set5", ds)
    boards = tmp_path / "boards"
    assert run.main(["--models", "bicubic", "--datasets", str(ds), "--protocol", "basicsr",
                     "--metrics", "psnr_y,ssim_y", "--out", str(tmp_path / "run"), "--device", "cpu",
                     "--leaderboards", str(boards)]) == 0
    assert "PSNR-Y (dB) ↑" in capsys.readouterr().out  # the table is printed
    head = pd.read_csv(boards / "headline.csv")
    row = head.iloc[0]
    assert row["images"] == 5 and row["level"] == 0
    assert abs(row["psnr_y"] - 28.42) <= 0.10, row["psnr_y"]
    assert abs(row["ssim_y"] - 0.8104) <= 0.003, row["ssim_y"]
