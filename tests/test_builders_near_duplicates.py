"""A re-encoded copy of a photo never becomes that photo's reference: near-duplicates are skipped."""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from builders.manifest import Dataset
from builders.recipes import cufed5
from tests.builders_synth import make_album


def test_jpeg_reencode_of_an_hr_is_skipped_and_reported(tmp_path):
    album = tmp_path / "albums" / "a0"
    make_album(album, seed=11)
    hr = cv2.imread(str(album / "img0.png"))[:, :, ::-1]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(hr)).save(buf, "JPEG", quality=95)
    (album / "img0_copy.jpg").write_bytes(buf.getvalue())  # name order: right after img0.png
    report = cufed5.build(tmp_path / "albums", tmp_path / "out", {"levels": {"n": 4}}, seed=0, jobs=1)
    assert report.skipped["near-duplicate"] == 1
    assert any(s["input"].startswith("a0/img0_copy.jpg (of a0/img0.png)") for s in report.skipped_inputs)
    ds = Dataset.open(tmp_path / "out")
    assert "a0/img0_copy.jpg" not in set(ds.manifest["ref_source"]) | set(ds.manifest["hr_source"])
    assert ds.spec["config"]["near_duplicate_psnr"] == 45.0
