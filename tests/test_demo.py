"""The embedded default end to end: demo albums from scikit-image photos, the real CUFED5-style
builder, the quick suite on top (what `make demo` does, on a subset), and the demo suite's rows
compared with those of a demo run made before the restructuring (commit f4943ac)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import run
from builders.manifest import Dataset

GOLDEN = Path(__file__).parent / "fixtures" / "demo_rows_f4943ac.csv"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_quick_suite_builds_demo_dataset_and_scores(data, tmp_path, monkeypatch):
    monkeypatch.setenv("REFSR_DATA", str(data))
    assert run.main(["--suite", "quick", "--out", str(tmp_path / "run"), "--device", "cpu",
                     "--leaderboards", str(tmp_path / "boards")]) == 0
    ds = Dataset.open(data / "demo")
    test = ds.samples(split="test")
    assert ds.spec["recipe"] == "cufed5"
    assert set(test["level"]) == {1, 2, 3, 4, 5}
    assert test["group"].nunique() >= 4  # one group per demo album that has a reference at every level
    df = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert (df["status"] == "ok").all() and df["image"].nunique() == 2
    assert (tmp_path / "boards" / "headline.csv").is_file()


def test_demo_rows_equal_the_run_before_the_restructuring(data, tmp_path, monkeypatch):
    """Every row of the demo suite (first group: all levels clean, level 1 under each variant; every
    metric and drift protocol) equals the committed rows of a full demo run at f4943ac."""
    monkeypatch.setenv("REFSR_DATA", str(data))
    assert run.main(["--suite", "demo", "--models", "bicubic,texture_transfer", "--limit", "1", "--no-profile",
                     "--out", str(tmp_path / "run"), "--leaderboards", str(tmp_path / "boards")]) == 0
    keys = ["model", "dataset", "split", "variant", "level", "image", "protocol", "metric"]
    now = pd.read_parquet(tmp_path / "run" / "results.parquet")
    golden = pd.read_csv(GOLDEN)
    merged = now.merge(golden, on=keys, how="left", suffixes=("", "_before"), validate="one_to_one")
    assert len(now) == 2 * 8 * 12 and merged["value_before"].notna().sum() + (merged["status"] != "ok").sum() == len(now)
    assert (merged["status"] == merged["status_before"]).all()
    ok = merged["status"] == "ok"
    np.testing.assert_allclose(merged.loc[ok, "value"], merged.loc[ok, "value_before"], rtol=0, atol=1e-9)
