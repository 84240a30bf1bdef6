"""Retrieval for large albums: each image's top-k candidates by the bag-of-words descriptor contain
its true partners (views of the same scene), and scan() verifies only those pairs above the threshold."""
from __future__ import annotations

from itertools import combinations

from builders import albums as albums_mod
from builders import retrieval, sift
from builders.report import BuildReport
from tests.builders_synth import VIEWS, make_album

SCENES, VIEWS_PER_SCENE = 5, 4


def _mixed_album(root):
    """One album folder holding 4 views of each of 5 unrelated synthetic scenes (20 images)."""
    for s in range(SCENES):
        make_album(root / f"s{s}", seed=200 + s, views=VIEWS[:VIEWS_PER_SCENE])
    album = root / "mixed"
    album.mkdir()
    for s in range(SCENES):
        for p in sorted((root / f"s{s}").glob("*.png")):
            p.rename(album / f"s{s}_{p.name}")
    return album


def test_top_k_keeps_the_true_partners_and_scan_verifies_only_those_pairs(tmp_path):
    album = _mixed_album(tmp_path / "albums")
    p = sift.SiftParams(nfeatures=300, retrieval_above=10, retrieval_k=VIEWS_PER_SCENE - 1)
    paths = sorted(album.glob("*.png"))
    scene = [q.name.split("_")[0] for q in paths]
    true = {(i, j) for i, j in combinations(range(len(paths)), 2) if scene[i] == scene[j]}
    feats = [r.features for r in sift.read_images(paths, p)]
    assert set(retrieval.candidate_pairs(feats, VIEWS_PER_SCENE - 1)) == true      # exactly the same-scene pairs
    assert retrieval.candidate_pairs(feats[:3], 5) == [(0, 1), (0, 2), (1, 2)]      # small: every pair

    for q in tmp_path.joinpath("albums").glob("s*"):
        q.rmdir()
    report = BuildReport("t")
    (scanned,) = albums_mod.scan(tmp_path / "albums", p, report, min_side=100)   # features from memory
    assert [album.name + "/" + q.name for q in paths] == scanned.rel
    assert set(scanned.pairs) == true                   # deterministic: the same candidates, all verified
    n = len(paths)
    assert report.pairs_scored == len(true) and report.pairs_not_verified == n * (n - 1) // 2 - len(true)
    assert "left out by retrieval" in report.format()
    exhaustive = albums_mod.scan(tmp_path / "albums", sift.SiftParams(nfeatures=300), BuildReport("t"), min_side=100)
    assert all(exhaustive[0].pairs[q].score == s.score for q, s in scanned.pairs.items())
