"""DRefSR-style recipe: verified pairs only, reference crops placed on the HR crop's true content."""
from __future__ import annotations

import cv2
import numpy as np

from builders.manifest import Dataset
from builders.recipes import drefsr
from tests.builders_synth import make_album, texture


def test_reference_crops_sit_where_the_hr_content_is(tmp_path):
    maps = make_album(tmp_path / "albums" / "scene", seed=21)        # maps[k]: view 0 -> view k pixels
    cv2.imwrite(str(tmp_path / "albums" / "scene" / "zz_other.png"), texture(99))   # unrelated photo
    cfg = {"split": "train", "crops_per_pair": 2, "crop_size": 64}
    report = drefsr.build(tmp_path / "albums", tmp_path / "out", cfg, seed=1)
    rows = Dataset.open(tmp_path / "out").manifest
    assert len(rows) > 10 and (rows["overlap"] >= 0.5).all() and (rows["crop_inliers"] >= 6).all()
    assert report.skipped["pair-unverified"] >= 5                     # the unrelated photo's pairs
    assert not rows["ref_source"].str.contains("zz_other").any() and not rows["hr_source"].str.contains("zz_other").any()
    assert report.crops["written"] == len(rows) and report.crops["verified"] <= report.crops["candidates"]
    errors = []
    for r in rows.itertuples():
        a, b = int(r.hr_source[-5]), int(r.ref_source[-5])
        h = maps[b] @ np.linalg.inv(maps[a])                           # true map HR image -> reference
        c = cv2.perspectiveTransform(np.float32([[[r.hr_x + 32, r.hr_y + 32]]]), h)[0, 0]
        centre = np.array([r.ref_x + 32, r.ref_y + 32])
        inside = (32 <= c[0] <= 320 - 32) and (32 <= c[1] <= 240 - 32)   # else the box was moved inside
        if inside:
            errors.append(np.abs(c - centre).max())
    assert errors and np.median(errors) <= 2 and max(errors) <= 6


def test_fundamental_geometry_places_by_matches_and_jobs_do_not_matter(tmp_path):
    make_album(tmp_path / "albums" / "scene", seed=22)
    cfg = {"split": "both", "crop_size": 64, "sift": {"geometry": "fundamental"}}
    drefsr.build(tmp_path / "albums", tmp_path / "a", cfg, seed=2, jobs=1)
    drefsr.build(tmp_path / "albums", tmp_path / "b", cfg, seed=2, jobs=2)
    assert (tmp_path / "a" / "manifest.parquet").read_bytes() == (tmp_path / "b" / "manifest.parquet").read_bytes()
    rows = Dataset.open(tmp_path / "a").manifest
    assert len(rows) > 0 and rows["overlap"].isna().all() and (rows["crop_inliers"] >= 6).all()
