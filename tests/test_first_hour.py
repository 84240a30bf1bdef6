"""What a new user runs into in the first hour ends with one clear paragraph and the right exit code."""
from __future__ import annotations

import pandas as pd
import pytest

from benchmark import run
from tests.harness_data import make_tiny_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("ds") / "tiny")


def _run(capsys, *argv):
    code = run.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_model_without_weights_publishes_an_empty_valid_leaderboard(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path / "w"))
    code, out, err = _run(capsys, "--models", "ttsr", "--datasets", str(tiny), "--out", str(tmp_path / "r"),
                          "--no-profile")
    assert code == 0 and "not scored: ttsr" in out and "TTSR.pt" in out
    assert (tmp_path / "r" / "leaderboard" / "README.md").is_file()  # next to the run, not in the repository
    assert pd.read_parquet(tmp_path / "r" / "results.parquet").empty


def test_a_selection_that_matches_nothing_is_an_error_and_a_partial_one_warns(tiny, tmp_path, capsys):
    base = ["--models", "bicubic", "--out", str(tmp_path / "r"), "--no-profile", "--no-publish"]
    code, _, err = _run(capsys, *base, "--datasets", str(tiny), "--levels", "7,9")
    assert code == 2 and "nothing to score: levels [7, 9] match no sample" in err and "[1, 2]" in err
    assert not (tmp_path / "r").exists()
    suite = tmp_path / "s.yaml"  # split: tets used to fall back to every split
    suite.write_text(f"name: s\nmodels: [bicubic]\ndatasets: [{tiny}]\nsplit: tets\n")
    code, _, err = _run(capsys, "--suite", str(suite), "--out", str(tmp_path / "r"))
    assert code == 2 and "split 'tets' matches no sample" in err and "its splits: test" in err
    other = make_tiny_dataset(tmp_path / "other", groups=1, levels=3)
    code, _, err = _run(capsys, *base, "--datasets", f"{tiny},{other}", "--levels", "3")
    assert code == 0 and "warning: levels [3] match no sample of " + str(tiny) in err
    assert set(pd.read_parquet(tmp_path / "r" / "results.parquet")["dataset"]) == {str(other)}


@pytest.mark.parametrize("argv, message", [
    (["--levels", "one"], "--levels 'one': give level numbers"),
    (["--shard", "2/2", "--dry-run"], "shards count from 0"),
    (["--shard", "x"], "--shard takes K/N"),
    (["--shard", "1/2", "--fresh"], "--fresh with shards"),
    (["--device", "tpu"], "--device 'tpu'"),
    (["--models", "ttsr.nope"], "no weight tag 'nope'"),
    (["--models", "bicubik"], "did you mean bicubic"),
    (["--limit", "-1"], "'limit' must be an integer >= 1"),
    (["--limit", "0"], "'limit' must be an integer >= 1"),
    (["--levels", "0"], "'levels' must be 'all' or a list of level numbers >= 1"),
    (["--seed", "-3"], "'seed' must be an integer >= 0"),
    (["--threads", "0"], "--threads 0: must be >= 1"),
    (["--max-memory", "0"], "--max-memory 0.0: must be > 0"),
])
def test_bad_options_are_one_line_errors(tiny, tmp_path, capsys, argv, message):
    base = ["--models", "bicubic", "--datasets", str(tiny), "--out", str(tmp_path / "r")]
    code, _, err = _run(capsys, *base, *argv)
    assert code == 2 and message in err
    assert not (tmp_path / "r" / "run.json").exists()  # refused before any work


def test_absent_dataset_and_raw_folder_are_explained_even_in_dry_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REFSR_DATA", str(tmp_path / "data"))
    code, _, err = _run(capsys, "--models", "bicubic", "--datasets", "cufed5", "--dry-run")
    assert code == 2 and "is not present" in err and "builders.import --layout cufed5" in err
    raw = make_tiny_dataset(tmp_path / "x") / "test" / "000_0.png"
    folder = tmp_path / "raw"
    folder.mkdir()
    raw.rename(folder / "a.png")
    code, _, err = _run(capsys, "--models", "bicubic", "--datasets", str(folder))
    assert code == 2 and "not a dataset (no manifest.parquet)" in err and "builders.import --layout folder" in err
