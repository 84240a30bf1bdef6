"""Every dataset the suite writes loads with HuggingFace ``imagefolder`` (right splits, hr/ref/lr and
the manifest's columns), and ``builders.export --to-hub-format`` writes a parquet copy that loads alone."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from builders import export
from builders.images import read_rgb, write_png
from builders.importers import import_layout
from builders.manifest import Dataset
from builders.report import BuildReport
from builders.variant import derive_variant
from builders.writer import Array, Row, Written, make_spec, write_dataset

datasets = pytest.importorskip("datasets")


def _img(rng, h, w):
    return np.repeat(np.repeat(rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8), 4, 0), 4, 1)


def _rows():
    """Two test groups (an HR, its LR, references at levels 1 and 2) and two train crops with boxes."""
    rng = np.random.default_rng(0)
    for g in range(2):
        hr, lr = f"test/{g:03d}_0.png", f"test/lr/{g:03d}_0.png"
        files = {hr: Array(_img(rng, 48, 64)), lr: Array(_img(rng, 12, 16))}
        for level in (1, 2):
            ref = f"test/{g:03d}_{level}.png"
            yield Row({"sample_id": f"{g:03d}_{level}", "split": "test", "group": f"{g:03d}", "level": level,
                       "hr": hr, "ref": ref, "lr": lr, "score": 10 * (3 - level), "hr_x": None},
                      {**files, ref: Array(_img(rng, 40, 56))})
            files = {hr: Written(), lr: Written()}
    for i in range(2):
        rel = {k: f"train/{k}/{i}.png" for k in ("hr", "ref", "lr")}
        yield Row({"sample_id": f"train_{i}", "split": "train", "group": "a", "level": 1, **rel, "score": 7,
                   "hr_x": 8 * i},
                  {rel["hr"]: Array(_img(rng, 32, 32)), rel["ref"]: Array(_img(rng, 32, 32)),
                   rel["lr"]: Array(_img(rng, 8, 8))})


@pytest.fixture
def tiny(tmp_path):
    out = tmp_path / "tiny"
    spec = make_spec(name="tiny", kind="recipe", created_by="test-fixture", version="1", config={"scale": 4}, seed=0)
    write_dataset(out, _rows(), spec, BuildReport("t"), columns={"sample_id": None, "split": None, "group": None,
                                                                  "level": None, "hr": None, "ref": None, "lr": None,
                                                                  "score": None, "hr_x": "Int64"})
    return out


def _load(folder, tmp_path):
    return datasets.load_dataset("imagefolder", data_dir=str(folder), cache_dir=str(tmp_path / "hf-cache"))


def _check_round_trip(dd, folder):
    """Splits, rows, images and metadata as in the manifest, for every row."""
    ds = Dataset.open(folder)
    m = ds.manifest.set_index("sample_id")
    assert sorted(dd) == sorted(m["split"].unique())
    for split, d in dd.items():
        assert d.num_rows == (m["split"] == split).sum()
        assert isinstance(d.features["hr"], datasets.Image) and isinstance(d.features["ref"], datasets.Image)
        assert isinstance(d.features["lr"], datasets.Image)
        for row in d:
            want = m.loc[row["sample_id"]]
            assert row["split"] == split == want["split"] and row["level"] == want["level"]
            for col in ("hr", "ref", "lr"):
                if col in m.columns and want[col]:
                    np.testing.assert_array_equal(np.asarray(row[col].convert("RGB")), read_rgb(ds.path(want[col]))[0])
                else:
                    assert row[col] is None
            for col in set(m.columns) - {"hr", "ref", "lr", "split"}:
                assert row[col] == (None if pd.isna(want[col]) else want[col]), col


def test_recipe_and_variant_datasets_load_with_every_column(tiny, tmp_path):
    _check_round_trip(_load(tiny, tmp_path), tiny)
    variant = tmp_path / "shuffled"
    derive_variant(tiny, "shuffle:4", variant, seed=1)
    dd = _load(variant, tmp_path)
    _check_round_trip(dd, variant)
    row = dd["test"][0]
    assert row["hr"] is not None and row["ref"] is not None and row["lr"] is not None
    assert row["variant"] == "shuffle:4" and '"perm"' in row["variant_params"]
    assert set(dd["train"]["hr_x"]) == {0, 8} and set(dd["test"]["hr_x"]) == {None}   # crop boxes kept


def test_folder_import_loads_as_its_manifest_split(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("a.png", "sub/b.png"):
        (tmp_path / "urban" / name).parent.mkdir(parents=True, exist_ok=True)
        write_png(tmp_path / "urban" / name, _img(rng, 32, 48))
    import_layout("folder", tmp_path / "urban", tmp_path / "imported")
    dd = _load(tmp_path / "imported", tmp_path)
    assert list(dd) == ["test"]
    _check_round_trip(dd, tmp_path / "imported")


def test_hub_export_embeds_images_and_loads_alone(tiny, tmp_path, capsys):
    variant = tmp_path / "shuffled"
    derive_variant(tiny, "shuffle:4", variant, seed=1)
    expected = {s: d.to_pandas() for s, d in _load(variant, tmp_path).items()}
    hub = tmp_path / "hub"
    assert export.main(["--to-hub-format", str(variant), str(hub), "--max-shard-size", "2KB"]) == 0
    assert "test: 4 rows in 4 shard(s)" in capsys.readouterr().out
    assert export.main(["--to-hub-format", str(variant), str(hub)]) == 2   # exists: refused, not replaced
    assert "--overwrite" in capsys.readouterr().err
    shutil.rmtree(variant)            # the copy holds the image bytes, not paths into the dataset
    shutil.rmtree(tiny)
    assert sorted(p.name for p in (hub / "data").iterdir())[:2] == ["test-00000-of-00004.parquet",
                                                                     "test-00001-of-00004.parquet"]
    assert "split: test" in (hub / "README.md").read_text()
    dd = datasets.load_dataset("parquet", data_dir=str(hub), cache_dir=str(tmp_path / "hf-cache2"))
    assert sorted(dd) == ["test", "train"]
    for split, d in dd.items():
        assert all(isinstance(d.features[c], datasets.Image) for c in ("hr", "ref", "lr"))
        got, want = d.to_pandas(), expected[split]
        assert list(got["sample_id"]) == list(want["sample_id"])
        for col in ("hr", "ref", "lr"):
            assert all(isinstance(v["bytes"], bytes) and v["bytes"] for v in got[col])
        first = d[0]
        assert first["hr"].size == ((64, 48) if split == "test" else (32, 32))
        assert set(got.columns) == set(want.columns)
