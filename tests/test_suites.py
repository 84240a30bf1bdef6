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
])
def test_typos_fail_at_load_time(field, value, message):
    raw = {"name": "x", "models": ["bicubic"], "datasets": ["demo"], field: value}
    with pytest.raises((SuiteError, KeyError, ValueError), match=message):
        validate(raw)


def test_user_suite_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\nmodels: [bicubic]\ndatasets: [demo]\nvariants: [clean, lr]\nlevels: [1, 2]\n")
    s = load_suite(str(f))
    assert s.levels == (1, 2) and [j.variant for j in jobs(s)] == ["clean", "lr"]
