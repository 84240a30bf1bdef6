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
        rhos[name] = (spearmanr(index, g["score"]).statistic, spearmanr(index, g["level"]).statistic)
        assert g.sort_values("level")["score"].is_monotonic_decreasing     # L1 = most similar
        with capsys.disabled():
            print(f"\n{name}: img2..img6 scores {g.sort_values('ref_source')['score'].tolist()}, "
                  f"levels {g.sort_values('ref_source')['level'].tolist()}, Spearman(index, score) "
                  f"{rhos[name][0]:+.2f}, Spearman(index, level) {rhos[name][1]:+.2f}")
    assert all(r_score <= -0.8 and r_level >= 0.8 for r_score, r_level in rhos.values()), rhos
