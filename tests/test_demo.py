"""The embedded default end to end: demo albums from scikit-image photos, the real CUFED5-style
builder, and the quick suite on top (what `make demo` does, on a subset)."""
from __future__ import annotations

import pandas as pd

from benchmark import run
from builders.manifest import Dataset


def test_quick_suite_builds_demo_dataset_and_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("REFSR_DATA", str(tmp_path / "data"))
    assert run.main(["--suite", "quick", "--out", str(tmp_path / "run"), "--device", "cpu",
                     "--leaderboards", str(tmp_path / "boards")]) == 0
    ds = Dataset.open(tmp_path / "data" / "demo")
    test = ds.samples(split="test")
    assert ds.spec["recipe"] == "cufed5"
    assert set(test["level"]) == {1, 2, 3, 4, 5}
    assert test["group"].nunique() >= 4  # one group per demo album that has a reference at every level
    df = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert (df["status"] == "ok").all() and df["image"].nunique() == 2
    assert (tmp_path / "boards" / "quick" / "headline.csv").is_file()
