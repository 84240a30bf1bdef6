"""SIFT pair scoring throughput: features once per image (builders.sift) vs a naive per-pair baseline.

    .venv/bin/python scripts/bench_sift.py                          # the Lund album (29 images, 406 pairs)
    .venv/bin/python scripts/bench_sift.py --album DIR --jobs 8 --naive-pairs 40

Reports pairs scored per second and the share of time in feature extraction vs matching for
(a) the builder's scheme (each image read and described once, then every pair matched) on one
process, (b) the same with ``--jobs`` worker processes, and (c) a naive baseline that reads and
describes both images again for every pair (measured on a fixed subset of pairs and extrapolated
per pair). (a) and (c) are measured alternately in this one process, ``--rounds`` times, and the
medians are printed, so load from other processes affects both alike. Also checks that the two
schemes give identical scores on the subset.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builders.images import list_images, read_rgb  # noqa: E402
from builders.sift import SiftParams, default_jobs, extract, match, read_images, score_pairs  # noqa: E402


def cached(paths, pairs, params, jobs):
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
        scores.append(match(fa, fb, params))
        t_feat, t_match = t_feat + t1 - t0, t_match + time.perf_counter() - t1
    return t_feat, t_match, scores


def line(name, n_pairs, t_feat, t_match):
    total = t_feat + t_match
    return (f"{name:<34} {n_pairs / total:9.2f} pairs/s   features {100 * t_feat / total:5.1f}%   "
            f"matching {100 * t_match / total:5.1f}%   ({total:.1f} s for {n_pairs} pairs)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--album", default=str(REPO.parent / "shared" / "data" / "albums" / "lund"))
    p.add_argument("--jobs", type=int, default=default_jobs())
    p.add_argument("--naive-pairs", type=int, default=30, help="pairs timed for the naive baseline")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    paths = list_images(args.album)
    if len(paths) < 2:
        print(f"need an album of at least two images, got {args.album}", file=sys.stderr)
        return 2
    params = SiftParams()
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
        print(f"round {r + 1}: cached {tf + tm:.1f} s, naive {nf + nm:.1f} s for {len(subset)} pairs; "
              f"identical scores on the subset: {same}")
    med = lambda runs, k: statistics.median(x[k] for x in runs)  # noqa: E731
    c_feat, c_match = med(runs_c, 0), med(runs_c, 1)
    n_feat, n_match = med(runs_n, 0), med(runs_n, 1)
    print(line("features once per image, 1 process", len(pairs), c_feat, c_match))
    print(line("naive: features per pair, 1 proc.", len(subset), n_feat, n_match))
    speed = (len(pairs) / (c_feat + c_match)) / (len(subset) / (n_feat + n_match))
    print(f"speed-up of the cached scheme over the naive baseline (same process, medians): {speed:.1f}x")
    if args.jobs > 1:
        tf, tm, _ = cached(paths, pairs, params, jobs=args.jobs)
        print(line(f"features once per image, {args.jobs} procs", len(pairs), tf, tm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
