"""SIFT scoring: real matches on warped views, cache by file hash + params, results independent of jobs."""
from __future__ import annotations

import cv2
import numpy as np

from builders import albums as albums_mod
from builders import sift
from builders.report import BuildReport
from tests.builders_synth import make_album, texture, warp


def test_match_counts_follow_the_amount_of_change():
    base = texture(1)
    p = sift.SiftParams()
    f0 = sift.extract(base, p)
    scores = [sift.match(f0, sift.extract(warp(base, a, z, s)[0], p), p) for a, z, s in
              [(5, 1.05, 0.02), (30, 1.5, 0.15), (75, 2.4, 0.25)]]
    other = sift.match(f0, sift.extract(texture(2), p), p)
    assert scores[0].inliers > scores[1].inliers > scores[2].inliers > 4 * other.inliers
    assert all(s.matches >= s.inliers and s.keypoints_a == len(f0) for s in scores)


def test_homography_maps_points_in_source_pixels():
    base = texture(3)
    view, m = warp(base, 20, 1.3, 0.05)
    p = sift.SiftParams(max_side=200)   # features on a downscaled copy, coordinates in source pixels
    s = sift.match(sift.extract(base, p), sift.extract(view, p), p)
    pts = np.float32([[50, 60], [200, 150]]).reshape(-1, 1, 2)
    got = cv2.perspectiveTransform(pts, s.model).reshape(-1, 2)
    want = cv2.perspectiveTransform(pts, m).reshape(-1, 2)
    assert np.abs(got - want).max() < 3.0


def test_disk_cache_keyed_by_file_hash_and_params(tmp_path):
    make_album(tmp_path / "a", seed=5)
    paths = sorted((tmp_path / "a").glob("*.png"))[:2]
    p = sift.SiftParams()
    first = sift.read_images(paths, p, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    cache = sift.FeatureCache(tmp_path / "cache")
    again = cache.get(sift.FeatureCache.key(sift.file_sha256(paths[0]), p))
    assert np.array_equal(again.desc, first[0].features.desc) and np.array_equal(again.xy, first[0].features.xy)
    assert sift.SiftParams(nfeatures=100).extraction_key() != p.extraction_key()
    assert sift.SiftParams(ratio=0.6).extraction_key() == p.extraction_key()   # matching-only option


def test_features_once_per_image_and_scores_independent_of_jobs(tmp_path, monkeypatch):
    make_album(tmp_path / "albums" / "x", seed=6)
    calls = []
    real = sift.extract
    monkeypatch.setattr(sift, "extract", lambda rgb, p: calls.append(1) or real(rgb, p))
    p = sift.SiftParams()
    one = albums_mod.scan(tmp_path / "albums", p, BuildReport("t"), min_side=100, jobs=1)
    assert len(calls) == 6                      # 6 images, 15 pairs: features never per pair
    two = albums_mod.scan(tmp_path / "albums", p, BuildReport("t"), min_side=100, jobs=2)
    assert albums_mod.pairs_table(one).equals(albums_mod.pairs_table(two))
    albums_mod.scan(tmp_path / "albums", p, BuildReport("t"), min_side=100, jobs=1)
    assert len(calls) == 6                      # same files, same options: served from memory
    assert len(one[0].pairs) == 15


def test_batches_of_albums_give_the_same_scores(tmp_path):
    for a in range(3):
        make_album(tmp_path / "albums" / f"a{a}", seed=40 + a, views=[(0, 1.0, 0.0), (10, 1.2, 0.05), (30, 1.5, 0.1)])
    p = sift.SiftParams(nfeatures=300)
    whole, batched = BuildReport("t"), BuildReport("t")
    one = albums_mod.scan(tmp_path / "albums", p, whole, min_side=100)
    many = albums_mod.scan(tmp_path / "albums", p, batched, min_side=100, batch_images=4)
    assert albums_mod.pairs_table(one).equals(albums_mod.pairs_table(many)) and len(one) == 3
    assert whole.pairs_scored == batched.pairs_scored == 9
    assert all(rec.features is None for al in many for rec in al.images)   # memory released after scoring


def test_int8_matching_gives_the_brute_force_knn_ratio_matches():
    base = texture(4)
    p = sift.SiftParams(nfeatures=600)
    fa, fb = sift.extract(base, p), sift.extract(warp(base, 20, 1.2, 0.05)[0], p)
    fb = sift.Features(np.concatenate([fb.xy, fb.xy[:40]]), np.concatenate([fb.desc, fb.desc[:40]]))  # exact ties
    for ratio in (0.6, 0.8, 0.95):
        knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(fa.desc.astype(np.float32), fb.desc.astype(np.float32), k=2)
        want = {(m.queryIdx, m.trainIdx) for m, n in knn if m.distance < ratio * n.distance}
        got = set(map(tuple, sift.ratio_matches(fa, fb, ratio).tolist()))
        assert got == want and len(got) > 30
    assert not any(j < 40 for _, j in got)               # a tie for the nearest never passes the test


def test_device_matching_equals_the_int8_path_and_scores_do_not_change(tmp_path):
    """The float32 product a GPU runs (here on the CPU) gives the int8 path's matches exactly, with
    extreme descriptors (all 0 / all 255) and exact ties included; scores of an album are unchanged
    when the ratio tests are made first on a device and the workers only verify."""
    base = texture(5)
    p = sift.SiftParams(nfeatures=600)
    fa, fb = sift.extract(base, p), sift.extract(warp(base, 15, 1.1, 0.05)[0], p)
    extreme = np.stack([np.zeros(128, np.uint8), np.full(128, 255, np.uint8)])
    fa = sift.Features(np.concatenate([fa.xy, fa.xy[:2]]), np.concatenate([fa.desc, extreme]))
    fb = sift.Features(np.concatenate([fb.xy, fb.xy[:42]]), np.concatenate([fb.desc, fb.desc[:40], extreme]))
    for ratio in (0.6, 0.8, 0.95):
        want = sift.ratio_matches(fa, fb, ratio)
        np.testing.assert_array_equal(sift.ratio_matches(fa, fb, ratio, device="cpu"), want)
    make_album(tmp_path / "x", seed=7, views=[(0, 1.0, 0.0), (10, 1.2, 0.05), (30, 1.5, 0.1)])
    p = sift.SiftParams(nfeatures=300)
    feats = [r.features for r in sift.read_images(sorted((tmp_path / "x").glob("*.png")), p)]
    pairs = [(i, j) for i in range(len(feats)) for j in range(i + 1, len(feats))]
    plain = sift.score_pairs(feats, pairs, p)
    for jobs in (1, 2):
        on_device = sift.score_pairs(feats, pairs, p, jobs=jobs, device="cpu")
        assert [(s.matches, s.inliers, s.score) for s in on_device] == [(s.matches, s.inliers, s.score) for s in plain]
    assert max(s.inliers for s in plain) > 20


def test_build_refuses_a_cuda_device_that_is_not_there(tmp_path, capsys):
    import torch

    from builders import build

    if torch.cuda.is_available():
        import pytest
        pytest.skip("a GPU is present")
    code = build.main(["--recipe", "cufed5", "--albums", str(tmp_path), "--out", str(tmp_path / "o"), "--device", "cuda:3"])
    assert code == 2 and "no such CUDA device" in capsys.readouterr().err
    code = build.main(["--recipe", "cufed5", "--albums", str(tmp_path), "--out", str(tmp_path / "o"), "--device", "gpu"])
    assert code == 2 and "expected cpu, cuda or cuda:N" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
