"""Suites are data validated against the registries; the repo root never shadows HuggingFace datasets."""
from __future__ import annotations

import subprocess
import sys

import pytest

from benchmark.suite import SuiteError, available_suites, jobs, load_suite, validate
from tests.conftest import REPO


def test_datasets_import_from_repo_root_is_huggingface():
    out = subprocess.run([sys.executable, "-c", "import datasets; print(datasets.load_dataset)"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert "function load_dataset" in out
    assert not list((REPO / "datasets").glob("*.py"))


@pytest.mark.parametrize("name", ["demo", "quick", "full", "robustness"])
def test_builtin_suites_validate(name):
    suite = load_suite(name)
    assert suite.name == name and jobs(suite)
    assert name in available_suites()


def test_robustness_suite_covers_the_frfsr_settings():
    v = set(load_suite("robustness").variants)
    assert {"shuffle:2", "shuffle:4", "shuffle:8", "lr", "warp", "luma"} <= v
    assert any(x.startswith("irrelevant:") for x in v)


@pytest.mark.parametrize("field,value,message", [
    ("models", ["bicubik"], "did you mean bicubic"),
    ("metrics", ["psnr_yy"], "did you mean psnr_y"),
    ("variants", ["shufle:4"], "did you mean shuffle"),
    ("protocol", "refsr-standrd", "refsr-standrd"),
    ("datasets", ["no_such_dataset"], "unknown dataset"),
    ("colour", "red", "unknown suite fields"),
    ("limit", -1, "'limit' must be an integer >= 1"),
    ("limit", 2.5, "'limit' must be an integer >= 1"),
    ("levels", [7, "x"], "'levels' must be 'all' or a list of level numbers >= 1"),
    ("variant_levels", [0], "'variant_levels' must be"),
    ("split", ["test"], "'split' must be a split name"),
    ("seed", -1, "'seed' must be an integer >= 0"),
    ("profile", {"lr": [0, 128], "ref": [512, 512]}, "'profile' must be null"),
    ("profile", [{"lr": [128, 128], "ref": [512, 512], "runs": 0}], "'profile' must be null"),
])
def test_typos_fail_at_load_time(field, value, message):
    raw = {"name": "x", "models": ["bicubic"], "datasets": ["demo"], field: value}
    with pytest.raises((SuiteError, KeyError, ValueError), match=message):
        validate(raw)


def test_profile_takes_several_sizes():
    from benchmark.suite import profile_sizes

    sizes = profile_sizes(load_suite("full").profile)
    assert [(p["lr"], p["ref"]) for p in sizes] == [([128, 128], [512, 512]), ([256, 256], [1024, 1024])]
    assert profile_sizes(load_suite("demo").profile) == [{"lr": [128, 128], "ref": [512, 512], "warmup": 1, "runs": 3}]


def test_user_suite_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\nmodels: [bicubic]\ndatasets: [demo]\nvariants: [clean, lr]\nlevels: [1, 2]\n")
    s = load_suite(str(f))
    assert s.levels == (1, 2) and [j.variant for j in jobs(s)] == ["clean", "lr"]
