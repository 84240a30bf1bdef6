"""The one dataset writer and the recipe Config -> CLI generation."""
from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from builders.config import add_config_options, given_options, option
from builders.images import write_png
from builders.levels import LevelConfig
from builders.manifest import Dataset, DatasetError
from builders.recipes import RECIPES, cufed5
from builders.report import BuildReport
from builders.writer import Array, Digest, Row, Source, Written, make_spec, write_dataset
from tests.builders_synth import make_albums

#: sha256 of manifest.parquet that main (7032eee, before the shared writer) writes for
#: ``cufed5.build(make_albums(n=2), out, seed=0, jobs=1)``.
CUFED5_MANIFEST_7032EEE = "f953b4fdc5f4c9dedea48d3d15085feaf798e071a48b809225f436ae01fa30b7"


def test_cufed5_manifest_is_byte_identical_to_before_the_shared_writer(tmp_path):
    albums = make_albums(tmp_path / "albums", n=2)
    cufed5.build(albums, tmp_path / "c5", seed=0, jobs=1)
    assert hashlib.sha256((tmp_path / "c5" / "manifest.parquet").read_bytes()).hexdigest() == CUFED5_MANIFEST_7032EEE
    spec = Dataset.open(tmp_path / "c5").spec
    assert (spec["kind"], spec["created_by"], spec["version"]) == ("recipe", "cufed5", cufed5.Config.version)
    assert {"name", "config", "seed", "source", "versions", "inputs", "report"} <= set(spec)


def _spec(name="d"):
    return make_spec(name=name, kind="recipe", created_by="t", version="1", config={}, seed=0)


def _rows(img, src):
    yield Row({"sample_id": "a", "split": "test", "group": "g", "level": 1, "hr": "test/hr.png", "ref": "test/r.png",
               "ref_sha256": Digest("test/r.png")}, {"test/hr.png": Array(img), "test/r.png": Source(src)})
    yield Row({"sample_id": "b", "split": "test", "group": "g", "level": 2, "hr": "test/hr.png", "ref": "test/r2.png",
               "ref_sha256": Digest("test/r2.png")}, {"test/hr.png": Written(), "test/r2.png": Source(src, convert=True)})


def test_writer_places_files_resolves_digests_and_counts(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    src = tmp_path / "src.png"
    write_png(src, img)
    report = BuildReport("t")
    for jobs in (1, 3):
        out = tmp_path / f"out{jobs}"
        write_dataset(out, _rows(img, src), _spec(out.name), report if jobs == 1 else BuildReport("t"), jobs=jobs)
        ds = Dataset.open(out)
        assert list(ds.manifest["ref_sha256"]) == [hashlib.sha256(src.read_bytes()).hexdigest()[:16],
                                                  hashlib.sha256((out / "test/r2.png").read_bytes()).hexdigest()[:16]]
        assert (out / "test" / "metadata.parquet").is_file() and ds.spec["report"]["samples"] == {"test": {"L1": 1, "L2": 1}}
    assert (tmp_path / "out1" / "manifest.parquet").read_bytes() == (tmp_path / "out3" / "manifest.parquet").read_bytes()
    assert report.files == {"written": 1, "linked": 1, "converted": 1}


@pytest.mark.parametrize("files", [{"test/x.png": Written()}, "twice", "outside-split-folder"])
def test_writer_refuses_inconsistent_plans_and_leaves_nothing(tmp_path, files):
    img = np.zeros((8, 8, 3), np.uint8)
    rows = [Row({"sample_id": "a", "split": "test", "group": "g", "level": 0, "hr": "test/x.png", "ref": ""},
                files if isinstance(files, dict) else {"test/x.png": Array(img)})]
    if files == "twice":
        rows.append(Row(dict(rows[0].fields, sample_id="b"), {"test/x.png": Array(img)}))
    if files == "outside-split-folder":  # imagefolder would load it without its metadata, or in the wrong split
        rows.append(Row(dict(rows[0].fields, sample_id="b", split="train", hr="test/x.png"), {}))
    with pytest.raises(DatasetError, match="outside their split's folder" if files == "outside-split-folder" else None):
        write_dataset(tmp_path / "d", rows, _spec(), BuildReport("t"))
    assert list(tmp_path.iterdir()) == []


def test_make_spec_has_one_layout_for_every_kind():
    with pytest.raises(ValueError):
        make_spec(name="d", kind="album", created_by="x", version="1", config={}, seed=0)
    assert set(make_spec(name="d", kind="variant", created_by="lr", version="1", config={}, seed=0,
                         base={"name": "c"})) == {"name", "kind", "created_by", "version", "config", "seed",
                                                   "inputs", "base"}


def test_every_config_field_is_a_cli_option_with_help():
    @dataclass(frozen=True)
    class Config:
        name: ClassVar[str] = "toy"
        version: ClassVar[str] = "1"
        levels: LevelConfig = option(help="levels", factory=LevelConfig)
        brand_new: float = option(0.5, "a field added without touching the CLI")
        flag: bool = option(False, "a switch")

    p = argparse.ArgumentParser()
    add_config_options(p, [Config])
    assert "a field added without touching the CLI" in p.format_help()
    args = p.parse_args(["--brand-new", "2", "--levels", "3", "--thresholds", "9", "4", "--flag"])
    assert given_options(args) == {"brand_new": 2.0, "flag": True, "levels": {"n": 3, "thresholds": [9.0, 4.0]}}
    assert given_options(p.parse_args([])) == {}


def test_recipe_configs_name_and_version_themselves():
    for name in RECIPES.list():
        cfg = RECIPES.info(name)["config"]
        assert cfg.name == name and cfg.version
