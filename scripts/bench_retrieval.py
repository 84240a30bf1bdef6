"""Retrieval for large albums: share of pairs verified and recall of the exhaustive L1-L3 picks.

    .venv/bin/python scripts/bench_retrieval.py                 # ~200-image album, k = SiftParams().retrieval_k
    .venv/bin/python scripts/bench_retrieval.py --k 8 12 --cache /tmp/sift-cache

Builds one album of 200 images in a temporary folder: every scene of ``../shared/data/albums``
(Lund, the four Oxford sequences, Sacré-Cœur, the two VLFeat pairs: 67 photos), single distractor
photos (Set5, Set14, the IQA reference images, the TTSR demo reference: 25), and synthetic scenes of
six views each (``tests/builders_synth``) up to 200. Every pair is scored exhaustively (the
builder's matcher, ``--jobs`` processes), then ``builders.retrieval.candidate_pairs`` picks each
image's candidates (top k by the first pass, top ``GLOBAL_K`` by VLAD). Printed per k: verified pairs
/ all pairs, the time of that retrieval (the global stage) and of verifying its pairs (one process),
and of the exhaustive picks of levels L1-L3 (``thresholds`` levels, every image as HR, one reference
per level as the recipes pick them) how many are among the verified pairs, all of them and those
within one scene (a pick joining two different scenes is a spurious match: unrelated photos can
reach 50-94 RANSAC inliers here, many descriptors of one ratio-matching a single one of the other).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builders.images import list_images  # noqa: E402
from builders.levels import LevelConfig, album_edges, assign, pick_one_per_level  # noqa: E402
from builders.retrieval import candidate_pairs  # noqa: E402
from builders.sift import SiftParams, read_images, score_pairs  # noqa: E402
from tests.builders_synth import VIEWS, make_album  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SCENES = ["lund", "oxford_graf", "oxford_boat", "oxford_bikes", "oxford_leuven", "sacre_coeur",
          "vlfeat_roofs", "vlfeat_river"]
SINGLES = ["sr_benchmarks/Set5", "sr_benchmarks/Set14", "iqa_calibration/ref", "refsr_pairs/ttsr_cufed5_demo/ref"]


def make_big_album(folder: Path, size: int) -> None:
    folder.mkdir(parents=True)
    for name in SCENES:
        for p in list_images(DATA / "albums" / name):
            shutil.copyfile(p, folder / f"{name}_{p.name}")
    for name in SINGLES:
        for p in list_images(DATA / name):
            shutil.copyfile(p, folder / f"single_{name.replace('/', '_')}_{p.name}")
    seed = 0
    while len(list_images(folder)) < size:
        n = min(len(VIEWS), size - len(list_images(folder)))
        tmp = folder.parent / f"synth{seed}"
        make_album(tmp, seed=1000 + seed, views=VIEWS[:n])
        for p in sorted(tmp.glob("*.png")):
            p.rename(folder / f"synth{seed:02d}_{p.name}")
        tmp.rmdir()
        seed += 1


def scene(name: str) -> str:
    """The scene a file of the big album shows (each single distractor is its own)."""
    parts = name.split("_")
    if name.startswith("single_"):
        return name
    return "_".join(parts[:2]) if parts[0] in ("oxford", "vlfeat", "sacre") else parts[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--k", type=int, nargs="+", default=[SiftParams().retrieval_k])
    p.add_argument("--thresholds", type=float, nargs="+", default=[200, 100, 50, 20],
                   help="level thresholds (inliers) for L1..L5 picks")
    p.add_argument("--jobs", type=int, default=1, help="processes for the exhaustive scoring")
    p.add_argument("--cache", help="SIFT feature cache folder")
    p.add_argument("--scores", help="file keeping the exhaustive scores (read if present, else written)")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"needs {DATA}", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    params = SiftParams()
    levels = LevelConfig(n=len(args.thresholds) + 1, method="thresholds", thresholds=tuple(args.thresholds))
    with tempfile.TemporaryDirectory(prefix="refsr-retrieval-") as tmp:
        album = Path(tmp) / "big"
        make_big_album(album, args.size)
        paths = list_images(album)
        t0 = time.perf_counter()
        feats = [r.features for r in read_images(paths, params, cache_dir=args.cache)]
        t1 = time.perf_counter()
        pairs = list(combinations(range(len(paths)), 2))
        if args.scores and Path(args.scores).is_file():
            with np.load(args.scores) as z:
                assert list(z["names"]) == [p.name for p in paths], "--scores holds another album"
                values = z["scores"]
        else:
            values = np.array([s.score for s in score_pairs(feats, pairs, params, jobs=args.jobs)], np.int64)
            if args.scores:
                np.savez(args.scores, names=np.array([p.name for p in paths]), scores=values)
        scores = dict(zip(pairs, values.tolist()))
        t2 = time.perf_counter()
    n = len(paths)
    print(f"album: {n} images ({sum(p.name.startswith(tuple(SCENES)) for p in paths)} from shared scenes), "
          f"{len(pairs)} pairs; features {t1 - t0:.0f} s, exhaustive scoring {t2 - t1:.0f} s"
          f"{' (read from ' + args.scores + ')' if args.scores and t2 - t1 < 5 else ''}")
    edges = album_edges([], levels)
    picks = set()
    for hr in range(n):
        cands = [(str(j), float(scores[min(hr, j), max(hr, j)])) for j in range(n) if j != hr]
        chosen, _ = pick_one_per_level(cands, assign(cands, edges, levels), levels.n)
        picks |= {(min(hr, int(j)), max(hr, int(j))) for lv, j in chosen.items() if lv <= 3}
    for k in args.k:
        t = time.perf_counter()
        verified = set(candidate_pairs(feats, k, params.ratio))
        dt = time.perf_counter() - t
        score_pairs(feats, sorted(verified), params)
        dv = time.perf_counter() - t - dt
        kept = len(picks & verified)
        same = {(i, j) for i, j in picks if scene(paths[i].name) == scene(paths[j].name)}
        print(f"k={k}: verified {len(verified)}/{len(pairs)} pairs = {100 * len(verified) / len(pairs):.1f}% "
              f"(retrieval {dt:.1f} s, verifying them {dv:.1f} s); exhaustive L1-L3 picks kept {kept}/{len(picks)} = "
              f"{100 * kept / max(1, len(picks)):.1f}%, within one scene {len(same & verified)}/{len(same)} = "
              f"{100 * len(same & verified) / max(1, len(same)):.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
