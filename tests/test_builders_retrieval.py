"""Retrieval for large albums: each image's candidates contain its true partners (views of the same
scene), the first pass estimates the verifier's ratio-test counts and keeps a pair VLAD cannot see
(many descriptors of one image matching one of the other), and scan() verifies only the candidates."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from builders import albums as albums_mod
from builders import retrieval, sift
from builders.report import BuildReport
from tests.builders_synth import VIEWS, make_album

SCENES, VIEWS_PER_SCENE = 5, 4
pytestmark = pytest.mark.usefixtures("one_thread")


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
    assert set(retrieval.candidate_pairs(feats, VIEWS_PER_SCENE - 1, device="cpu")) == true  # the device path
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


def test_first_pass_estimates_the_ratio_test_matches_of_verification(tmp_path):
    album = _mixed_album(tmp_path / "albums")
    p = sift.SiftParams(nfeatures=300)
    feats = [r.features for r in sift.read_images(sorted(album.glob("*.png")), p)]
    exact = np.array([[len(sift.ratio_matches(a, b, p.ratio)) if i < j else 0 for j, b in enumerate(feats)]
                      for i, a in enumerate(feats)])
    exact = exact + exact.T
    assert np.array_equal(retrieval.first_pass(feats, p.ratio, count=10_000), exact)   # every descriptor probed
    est = retrieval.first_pass(feats, p.ratio, count=64)
    assert len(retrieval.probes(feats[0], 64)) == 64 and np.array_equal(est, est.T)
    same = exact > 30                                       # the views of one scene
    assert same.sum() >= SCENES * VIEWS_PER_SCENE and np.all(np.abs(est[same] / exact[same] - 1) < 0.5)
    assert np.array_equal(est, retrieval.first_pass(feats, p.ratio, count=64))        # deterministic


def test_a_burst_matching_one_descriptor_is_a_candidate():
    """Image 0 has 120 near-copies of one descriptor that image 11 holds once among random ones: the
    verifier counts ~120 ratio-test matches for (0, 11) (how unrelated photos of the bench reach 50-94
    inliers), VLAD ranks neither among the other's top 2, the first pass ranks 11 first for 0, and
    the pair is a candidate."""
    rng = np.random.default_rng(0)

    def feats(desc):
        return sift.Features(rng.uniform(0, 500, (len(desc), 2)).astype(np.float32), desc.astype(np.uint8))

    hub = rng.integers(0, 256, 128)
    burst = np.clip(hub + rng.integers(-3, 4, (120, 128)), 0, 255)
    images = [feats(np.vstack([burst, rng.integers(0, 256, (200, 128))]))]
    images += [feats(rng.integers(0, 256, (200, 128))) for _ in range(10)]
    images.append(feats(np.vstack([hub[None], rng.integers(0, 256, (150, 128))])))
    assert len(sift.ratio_matches(images[0], images[11], 0.8)) >= 100
    v = retrieval.global_descriptors(images)
    assert (0, 11) not in retrieval._top(v @ v.T, 2)
    est = retrieval.first_pass(images, 0.8)
    assert int(np.argmax(est[0])) == 11 and est[0, 11] >= 60
    assert (0, 11) in retrieval.candidate_pairs(images, 2, 0.8)
