"""An album of unrelated photos never forms a CUFED5 group: its best pair is far below real L1 views."""
from __future__ import annotations

from builders.recipes import cufed5
from tests.builders_synth import make_album, texture
import cv2


def test_unrelated_photos_form_no_group_and_say_why(tmp_path):
    album = tmp_path / "albums" / "unrelated"
    album.mkdir(parents=True)
    for k in range(6):  # six different random textures: SIFT finds a few chance matches at most
        cv2.imwrite(str(album / f"p{k}.png"), texture(500 + k)[:, :, ::-1])
    make_album(tmp_path / "albums" / "real", seed=3)
    report = cufed5.build(tmp_path / "albums", tmp_path / "out", {"levels": {"n": 4}}, seed=0, jobs=1)
    assert report.skipped["hr-no-related-reference"] >= 1
    assert {s["input"] for s in report.skipped_inputs if s["reason"] == "album-no-complete-group"} == {"unrelated"}
    assert report.samples  # the real album still gives its group


def test_the_threshold_is_an_option_recorded_in_the_spec(tmp_path):
    import pytest

    from builders.manifest import Dataset, DatasetError

    make_album(tmp_path / "albums" / "real", seed=3)
    with pytest.raises(DatasetError, match="no samples to write .*hr-no-related-reference=6"):
        cufed5.build(tmp_path / "albums", tmp_path / "out", {"levels": {"n": 4}, "min_l1_score": 10 ** 6},
                     seed=0, jobs=1)
    assert not (tmp_path / "out").exists()  # an empty dataset is never left behind
    report = cufed5.build(tmp_path / "albums", tmp_path / "out", {"levels": {"n": 4}, "min_l1_score": 7},
                          seed=0, jobs=1)
    assert report.samples and Dataset.open(tmp_path / "out").spec["config"]["min_l1_score"] == 7


def test_bad_album_inputs_are_refused_or_counted(tmp_path):
    import pytest

    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file"):
        cufed5.build(tmp_path / "file.png", tmp_path / "o1", seed=0, jobs=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images in"):
        cufed5.build(tmp_path / "empty", tmp_path / "o2", seed=0, jobs=1)
    make_album(tmp_path / "albums" / "real", seed=3)
    cv2.imwrite(str(tmp_path / "albums" / "stray.png"), texture(9)[:, :, ::-1])
    report = cufed5.build(tmp_path / "albums", tmp_path / "o3", {"levels": {"n": 4}}, seed=0, jobs=1)
    assert report.skipped["image-outside-albums"] == 1
    for bad in ({"scale": 0}, {"crop_size": 0}, {"test_fraction": 5}, {"sift": {"ratio": 2}}):
        with pytest.raises(ValueError, match="must be"):
            cufed5.build(tmp_path / "albums", tmp_path / "o4", bad, seed=0, jobs=1)
