"""datasets/*.yaml: keys checked at load, layout/recipe used (import command, demo build)."""
from __future__ import annotations

import pytest

from benchmark import dataset_registry as reg
from builders.manifest import DatasetError


def test_shipped_specs_load_and_name_their_maker():
    entries = reg.known()
    assert entries["demo"].build == "demo-corpus" and entries["demo"].recipe == "cufed5"
    assert all(e.layout or e.build for e in entries.values())


@pytest.mark.parametrize("text, message", [
    ("name: x\nlayot: cufed5\n", "unknown key 'layot'; did you mean 'layout'?"),
    ("name: x\nlayout: cufed\n", "unknown layout 'cufed'; did you mean 'cufed5'?"),
    ("name: x\nbuild: demo-corpus\nrecipe: cufed55\n", "unknown recipe 'cufed55'"),
    ("name: x\nbuild: demo-corpus\n", "needs the recipe"),
])
def test_bad_spec_is_refused_with_file_and_suggestion(tmp_path, text, message):
    f = tmp_path / "x.yaml"
    f.write_text(text)
    with pytest.raises(DatasetError) as e:
        reg.read_entry(f)
    assert str(f) in str(e.value) and message in str(e.value)


def test_missing_import_prints_the_exact_command(tmp_path, monkeypatch):
    monkeypatch.setenv("REFSR_DATA", str(tmp_path))
    entry = reg.known()["wrsr"]
    with pytest.raises(DatasetError) as e:
        reg.open_dataset(entry)
    assert f"python -m builders.import --layout wrsr --src <wrsr folder> --out {tmp_path / 'WR-SR'}" in str(e.value)
