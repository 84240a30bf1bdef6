"""Done-when check on real photos: in each Oxford sequence, with img1 as HR, similarity falls with the index."""
from __future__ import annotations

import pytest
from scipy.stats import spearmanr

from builders.manifest import Dataset
from builders.recipes import cufed5
from tests.conftest import shared_path

SEQUENCES = ("oxford_bikes", "oxford_boat", "oxford_graf", "oxford_leuven")


@pytest.mark.slow
def test_oxford_levels_follow_the_known_difficulty(tmp_path, capsys):
    albums = tmp_path / "albums"
    albums.mkdir()
    for name in SEQUENCES:
        (albums / name).symlink_to(shared_path("data", "albums", name), target_is_directory=True)
    cufed5.build(albums, tmp_path / "c5", {"split": "test"}, seed=0, jobs=2)
    test = Dataset.open(tmp_path / "c5").samples("test")
    rhos = {}
    for name in SEQUENCES:
        g = test[test["album"] == name]
        assert set(g["hr_source"]) == {f"{name}/img1.png"} and len(g) == 5
        index = g["ref_source"].str.extract(r"img(\d)\.png")[0].astype(int)
        rhos[name] = spearmanr(index, g["score"]).statistic
        assert spearmanr(index, g["level"]).statistic == -rhos[name]   # levels: rank of the score
    with capsys.disabled():
        print("\nSpearman(image index, SIFT score), img1 as HR: "
              + ", ".join(f"{k} {v:+.2f}" for k, v in rhos.items()))
    assert all(r <= -0.8 for r in rhos.values()), rhos
