"""SIFT pair scoring: the builder's scheme vs a naive per-pair script, in speed and in scores.

    .venv/bin/python scripts/bench_sift.py                          # the Lund album (29 images, 406 pairs)
    .venv/bin/python scripts/bench_sift.py --first 7                # its first 7 images (21 pairs)
    .venv/bin/python scripts/bench_sift.py --agreement              # scores vs the reference matcher
    .venv/bin/python scripts/bench_sift.py --album DIR --jobs 8 --naive-pairs 40

Speed: pairs scored per second, on one thread of one process, for (a) the builder's scheme
(``builders.sift``: each image read and described once, then every pair matched by one exact int8
matrix product and verified) and (b) the naive baseline, the per-pair script the builder started
from: for every pair, read and describe both images again, then OpenCV's brute-force k=2 L2 search
(``cv2.BFMatcher.knnMatch``), Lowe's ratio test and the same RANSAC check (timed on a fixed subset of
pairs, extrapolated per pair). (a) and (b) alternate ``--rounds`` times in this one process and the
medians are printed, so load from other processes affects both alike. Also printed: matching time
per verified pair of the two matchers on the same features, and whether the subset's scores are
identical. ``--jobs N`` adds (a) on N worker processes.

``--agreement``: every pair of each album (default the four Oxford sequences and Lund) scored by the
builder and by the reference matcher (BFMatcher + the same verification) on the same features;
prints identical pairs and the Spearman rank correlation of the scores per album and pooled.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builders.images import list_images, read_rgb  # noqa: E402
from builders import sift  # noqa: E402
from builders.sift import SiftParams, extract, match, read_images, score_pairs, verify  # noqa: E402

ALBUMS = REPO.parent / "shared" / "data" / "albums"
AGREEMENT = ["oxford_graf", "oxford_boat", "oxford_bikes", "oxford_leuven", "lund"]


def reference_match(fa, fb, params):
    """The matcher the builder replaced: OpenCV brute-force k=2 search, ratio test, same verification."""
    if len(fa) < 2 or len(fb) < 2:
        return match(fa, fb, params)
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(fa.desc.astype(np.float32), fb.desc.astype(np.float32), k=2)
    good = [(m.queryIdx, m.trainIdx) for m, n in (p for p in knn if len(p) == 2)
            if m.distance < params.ratio * n.distance]
    return verify(fa, fb, np.array(good, np.int64).reshape(-1, 2), params)


def cached(paths, pairs, params, jobs):
    sift._CACHES.clear()       # features computed in this call, not served from an earlier round's memory
    t0 = time.perf_counter()
    feats = [r.features for r in read_images(paths, params, jobs=jobs)]
    t1 = time.perf_counter()
    scores = score_pairs(feats, pairs, params, jobs=jobs)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, scores


def naive(paths, pairs, params):
    t_feat = t_match = 0.0
    scores = []
    for i, j in pairs:
        t0 = time.perf_counter()
        fa, fb = extract(read_rgb(paths[i])[0], params), extract(read_rgb(paths[j])[0], params)
        t1 = time.perf_counter()
        scores.append(reference_match(fa, fb, params))
        t_feat, t_match = t_feat + t1 - t0, t_match + time.perf_counter() - t1
    return t_feat, t_match, scores


def matching_only(feats, pairs, params):
    """Seconds per pair of the builder's matcher and of the reference matcher on the same features."""
    t0 = time.perf_counter()
    for i, j in pairs:
        match(feats[i], feats[j], params)
    t1 = time.perf_counter()
    for i, j in pairs:
        reference_match(feats[i], feats[j], params)
    t2 = time.perf_counter()
    return (t1 - t0) / len(pairs), (t2 - t1) / len(pairs)


def line(name, n_pairs, t_feat, t_match):
    total = t_feat + t_match
    return (f"{name:<34} {n_pairs / total:9.2f} pairs/s   features {100 * t_feat / total:5.1f}%   "
            f"matching {100 * t_match / total:5.1f}%   ({total:.1f} s for {n_pairs} pairs)")


def spearman(x, y) -> float:
    rx, ry = pd.Series(x, dtype=float).rank(), pd.Series(y, dtype=float).rank()
    return float(np.corrcoef(rx, ry)[0, 1])


def agreement(albums: list[str], params: SiftParams) -> int:
    pooled_new, pooled_ref = [], []
    for name in albums:
        folder = Path(name) if Path(name).is_dir() else ALBUMS / name
        paths = list_images(folder)
        feats = [r.features for r in read_images(paths, params)]
        new, ref = [], []
        same = 0
        for i, j in combinations(range(len(paths)), 2):
            s, r = match(feats[i], feats[j], params), reference_match(feats[i], feats[j], params)
            new.append(s.score)
            ref.append(r.score)
            same += (s.matches, s.inliers) == (r.matches, r.inliers)
        pooled_new += new
        pooled_ref += ref
        print(f"{folder.name:<14} {len(paths):3d} images {len(new):4d} pairs: identical (matches, inliers) "
              f"{same}/{len(new)}, max |score diff| {max(abs(a - b) for a, b in zip(new, ref))}, "
              f"Spearman {spearman(new, ref):.4f}")
    print(f"pooled: {len(pooled_new)} pairs, Spearman {spearman(pooled_new, pooled_ref):.4f}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--album", default=str(ALBUMS / "lund"))
    p.add_argument("--first", type=int, default=0, help="use only the album's first N images (name order)")
    p.add_argument("--jobs", type=int, default=1, help="also time the builder on this many processes")
    p.add_argument("--naive-pairs", type=int, default=30, help="pairs timed for the naive baseline")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--agreement", nargs="*", metavar="ALBUM",
                   help=f"score agreement instead of speed (default albums: {' '.join(AGREEMENT)})")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)       # one thread for both schemes: the comparison is per core
    torch.set_num_threads(1)
    params = SiftParams()
    if args.agreement is not None:
        return agreement(args.agreement or AGREEMENT, params)
    paths = list_images(args.album)[: args.first or None]
    if len(paths) < 2:
        print(f"need an album of at least two images, got {args.album}", file=sys.stderr)
        return 2
    pairs = list(combinations(range(len(paths)), 2))
    step = max(1, len(pairs) // args.naive_pairs)
    subset = pairs[::step][: args.naive_pairs]
    print(f"album {args.album}: {len(paths)} images, {len(pairs)} pairs; SIFT {params}")

    runs_c, runs_n = [], []
    for r in range(args.rounds):
        tf, tm, scores = cached(paths, pairs, params, jobs=1)
        runs_c.append((tf, tm))
        nf, nm, nscores = naive(paths, subset, params)
        runs_n.append((nf, nm))
        by_pair = dict(zip(pairs, scores))
        same = all((by_pair[q].matches, by_pair[q].inliers) == (s.matches, s.inliers) for q, s in zip(subset, nscores))
        print(f"round {r + 1}: builder {tf + tm:.1f} s for {len(pairs)} pairs, naive {nf + nm:.1f} s for "
              f"{len(subset)} pairs; identical scores on the subset: {same}")
    med = lambda runs, k: statistics.median(x[k] for x in runs)  # noqa: E731
    c_feat, c_match = med(runs_c, 0), med(runs_c, 1)
    n_feat, n_match = med(runs_n, 0), med(runs_n, 1)
    print(line("builder: features once, 1 thread", len(pairs), c_feat, c_match))
    print(line("naive: features per pair, 1 thread", len(subset), n_feat, n_match))
    feats = [r.features for r in read_images(paths, params)]
    t_new, t_ref = matching_only(feats, subset, params)
    print(f"matching + verification per pair, same features: builder {1e3 * t_new:.1f} ms, "
          f"BFMatcher reference {1e3 * t_ref:.1f} ms ({t_ref / t_new:.1f}x less time per verified pair)")
    speed = (len(pairs) / (c_feat + c_match)) / (len(subset) / (n_feat + n_match))
    print(f"speed-up of the builder over the naive baseline (same process, medians): {speed:.1f}x")
    if args.jobs > 1:
        tf, tm, _ = cached(paths, pairs, params, jobs=args.jobs)
        print(line(f"builder, {args.jobs} processes", len(pairs), tf, tm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
