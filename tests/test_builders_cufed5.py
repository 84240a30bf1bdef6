"""CUFED5-style recipe on tiny synthetic albums: layout, levels, determinism, export, bad inputs."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from builders import images
from builders.manifest import Dataset
from builders.recipes import cufed5
from tests.builders_synth import make_album, make_albums, texture


@pytest.fixture(scope="module")
def albums(tmp_path_factory):
    return make_albums(tmp_path_factory.mktemp("albums"), n=2)


@pytest.fixture(scope="module")
def built(albums, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "c5"
    report = cufed5.build(albums, out, {"split": "both", "test_fraction": 0.5}, seed=3, jobs=1)
    return out, report


def test_test_groups_in_released_layout_with_levels_following_the_views(built):
    out, report = built
    ds = Dataset.open(out)
    test = ds.samples("test")
    assert len(test) == 5 and ds.levels == [1, 2, 3, 4, 5]
    g = test["group"].iloc[0]
    for k in range(6):
        assert (out / "test" / f"{g}_{k}.png").is_file()
    hr = cv2.imread(str(out / "test" / f"{g}_0.png"))
    lr = cv2.imread(str(out / "test" / "lr" / f"{g}_0.png"))
    assert max(hr.shape[:2]) <= 500 and hr.shape[0] % 4 == 0 and lr.shape[0] * 4 == hr.shape[0]
    # views are made in growing order of change: level k must be view k of the HR's texture
    assert list(test.sort_values("level")["ref_source"].str[-8:]) == [f"img{k}.png" for k in range(1, 6)]
    assert test.sort_values("level")["score"].is_monotonic_decreasing
    assert report.samples[("test", 1)] == 1


def test_train_crops_are_160_with_lr_by_pil_bicubic(built):
    out, report = built
    train = Dataset.open(out).samples("train")
    assert len(train) == 10 and set(train["level"]) == {1, 2, 3, 4, 5}
    row = train.iloc[0]
    hr, _ = images.read_rgb(out / row.hr)
    ref, _ = images.read_rgb(out / row.ref)
    lr, _ = images.read_rgb(out / row.lr)
    assert hr.shape == ref.shape == (160, 160, 3) and lr.shape == (40, 40, 3)
    from PIL import Image
    assert np.array_equal(lr, np.asarray(Image.fromarray(hr).resize((40, 40), Image.BICUBIC)))
    assert (train["crop_inliers"] > 0).mean() > 0.5   # reference crops sit on matched content


def test_same_seed_same_bytes_and_jobs_do_not_matter(albums, built, tmp_path):
    out, _ = built
    again = tmp_path / "again"
    cufed5.build(albums, again, {"split": "both", "test_fraction": 0.5}, seed=3, jobs=2)
    assert (again / "manifest.parquet").read_bytes() == (out / "manifest.parquet").read_bytes()
    other = tmp_path / "other"
    cufed5.build(albums, other, {"split": "both", "test_fraction": 0.5}, seed=4, jobs=1)
    assert (other / "manifest.parquet").read_bytes() != (out / "manifest.parquet").read_bytes()


def test_loads_with_pandas_and_huggingface_imagefolder(built, tmp_path):
    out, _ = built
    assert len(pd.read_parquet(out / "manifest.parquet")) == 15
    import datasets
    dd = datasets.load_dataset("imagefolder", data_dir=str(out), cache_dir=str(tmp_path / "hf"))
    assert set(dd) == {"train", "test"} and dd["test"].num_rows == 5 and dd["train"].num_rows == 10
    row = dd["test"][0]
    assert row["hr"].size[0] <= 500 and row["ref"] is not None and row["lr"].size[0] * 4 == row["hr"].size[0]
    assert sorted(dd["test"]["level"]) == [1, 2, 3, 4, 5]
    # train crop boxes survive though test rows have none (null there)
    assert None not in dd["train"]["hr_x"] and set(dd["test"]["hr_x"]) == {None}
    assert dd["train"][0]["hr"].size == dd["train"][0]["ref"].size == (160, 160)


def _write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)


def test_bad_inputs_are_counted_and_the_build_goes_on(tmp_path):
    root = tmp_path / "albums"
    make_album(root / "good", seed=11)
    base = texture(12)[:, :, ::-1]
    odd = root / "odd"
    make_album(odd, seed=12, views=[(0, 1.0, 0.0), (4, 1.05, 0.02)])
    def shifted(dx):
        return cv2.warpAffine(base, np.float32([[1, 0, dx], [0, 1, 3]]), base.shape[1::-1])
    _write(odd / "gray.png", cv2.cvtColor(shifted(5), cv2.COLOR_BGR2GRAY))
    _write(odd / "rgba.png", cv2.cvtColor(shifted(9), cv2.COLOR_BGR2BGRA))
    _write(odd / "deep.png", shifted(13).astype(np.uint16) * 257)
    _write(odd / "tiny.png", base[:50, :50])
    _write(odd / "copy.png", base)                # same pixels as odd/img0.png
    (odd / "broken.png").write_bytes(b"not an image")
    (odd / "H1to2p").write_text("1 0 0\n0 1 0\n0 0 1\n")   # not an image: ignored
    _write(root / "single" / "only.png", texture(13)[:, :, ::-1])
    _write(root / "blank" / "a.png", np.full((200, 200, 3), 128, np.uint8))
    _write(root / "blank" / "b.png", np.full((200, 200, 3), 90, np.uint8))
    report = cufed5.build(root, tmp_path / "out", {"split": "test"}, seed=0)
    d = report.to_dict()
    assert d["skipped"]["unreadable"] == 1 and d["skipped"]["too-small"] == 1
    assert d["skipped"]["duplicate"] == 1 and d["skipped"]["album-single-image"] == 1
    assert d["skipped"]["pair-no-matches"] == 1 and d["skipped"]["hr-too-few-references"] >= 1
    assert d["converted"] == {"16-bit": 1, "alpha": 1, "grayscale": 1}
    assert {"input": "odd/broken.png", "reason": "unreadable"} in d["skipped_inputs"]
    assert d["samples"]["test"]["L1"] == 1                 # the good album still gives its group
    assert Dataset.open(tmp_path / "out").spec["report"]["skipped"] == d["skipped"]


def test_interrupted_build_leaves_nothing(albums, tmp_path, monkeypatch):
    calls = []

    def failing(path, rgb):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
    monkeypatch.setattr("builders.writer.write_png", failing)
    with pytest.raises(KeyboardInterrupt):
        cufed5.build(albums, tmp_path / "ds", seed=0)
    assert list(tmp_path.iterdir()) == []
