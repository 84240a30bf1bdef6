"""Which pairs of a large album to verify: each image's most promising partners by two cheap scores.

Verifying every pair of an album of N photos costs N²/2 SIFT matches; above a size threshold
(``SiftParams.retrieval_above``) the builder verifies only a candidate list per image, about N·k
pairs (a pair is kept when either image lists the other). Two scores make the list:

- a first pass of the verifier itself: ``PROBES`` descriptors of the image (a fixed stride through
  them) ratio-tested against all of the other image's, scaled to the image's size: an estimate of
  the ratio-test matches verification will count (its inliers are a subset of them). Its top
  ``retrieval_k`` partners are kept. It runs on all N²/2 pairs at about PROBES / (keypoints per
  image) of a verification each: on a 200-image album as long as verifying the candidates, and
  growing faster than them with N;
- VLAD over the same SIFT features (``WORDS`` visual words k-means-learned on a fixed subsample of
  the album's RootSIFT descriptors), similarity the cosine: robust for views of one scene whose
  probes happen to miss the overlap. Its top ``GLOBAL_K`` partners are kept too.

Everything is seeded or exact integer arithmetic, so an album always gives the same pairs. On the
200-image album of ``scripts/bench_retrieval.py`` (shared scenes plus distractors) VLAD alone kept
90 % of the exhaustive L1-L3 picks at k = 10 (64-256 words, query expansion: 90-91 % up to k = 20):
the misses are unrelated photos that the verifier scores 50-94 inliers (many descriptors of one
image ratio-matching one descriptor of the other, a homography collapsing them onto it), which VLAD
does not predict and the first pass does; that script prints the figures per k.
"""
from __future__ import annotations

import cv2
import numpy as np

from .sift import Features, ratio_matches

WORDS = 64                  # visual words (VLAD: 64 x 128 dimensions)
SAMPLE = 60_000             # descriptors k-means learns from (a fixed stride through the album's)
PROBES = 128                # descriptors per image the first pass ratio-tests against every other image
GLOBAL_K = 5                # partners per image kept by VLAD besides the first pass's retrieval_k


def root_sift(desc: np.ndarray) -> np.ndarray:
    """Hellinger-kernel SIFT: L1-normalise, square root (float32)."""
    d = desc.astype(np.float32)
    return np.sqrt(d / np.maximum(d.sum(1, keepdims=True), 1e-6))


def _nearest_word(x: np.ndarray, words: np.ndarray) -> np.ndarray:
    import torch

    xt, wt = torch.from_numpy(x), torch.from_numpy(words)
    return (xt @ wt.T - 0.5 * (wt * wt).sum(1)).argmax(1).numpy()


def global_descriptors(features: list[Features], words: int = WORDS) -> np.ndarray:
    """(N, words * 128) VLAD vectors of the images' SIFT features: per visual word, the sum of the
    residuals of the RootSIFT descriptors assigned to it; signed square root, each word's block
    L2-normalised (intra-normalisation, against bursts of repeated texture), then the whole vector."""
    descs = [root_sift(f.desc) for f in features]
    pool = np.concatenate([d for d in descs if len(d)] or [np.zeros((0, 128), np.float32)])
    k = min(words, len(pool) // 4)
    vectors = np.zeros((len(features), max(k, 1), 128), np.float32)
    if k >= 2:
        sample = np.ascontiguousarray(pool[:: max(1, len(pool) // SAMPLE)])
        cv2.setRNGSeed(0)
        _, _, centres = cv2.kmeans(sample, k, None, (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 15, 1e-4),
                                   1, cv2.KMEANS_PP_CENTERS)
        for i, d in enumerate(descs):
            if len(d):
                word = _nearest_word(d, centres)
                np.add.at(vectors[i], word, d)
                vectors[i] -= np.bincount(word, minlength=k)[:, None] * centres
    vectors = np.sign(vectors) * np.sqrt(np.abs(vectors))
    vectors /= np.maximum(np.linalg.norm(vectors, axis=2, keepdims=True), 1e-12)
    vectors = vectors.reshape(len(features), -1)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def probes(f: Features, count: int = PROBES) -> Features:
    """``count`` descriptors of ``f`` at a fixed stride (all of them when it has fewer)."""
    keep = np.arange(0, len(f), max(1, len(f) // count))[:count]
    return Features(f.xy[keep], f.desc[keep])


def first_pass(features: list[Features], ratio: float, count: int = PROBES, device=None) -> np.ndarray:
    """(N, N) symmetric estimates of the ratio-test matches of each pair (i < j) as verification
    computes them, i's descriptors against j's: the matches of ``count`` probes of i, times
    len(i) / probes. ``device``: where the ratio tests run (same counts; see ``sift.ratio_matches``)."""
    n = len(features)
    est = np.zeros((n, n))
    for i, f in enumerate(features):
        p = probes(f, count)
        if len(p) < 2:
            continue
        scale = len(f) / len(p)
        for j in range(i + 1, n):
            est[i, j] = est[j, i] = scale * len(ratio_matches(p, features[j], ratio, device))
    return est


def _top(sim: np.ndarray, k: int) -> set[tuple[int, int]]:
    """Pairs (i < j) where j is among row i's ``k`` highest (ties: lower index)."""
    sim = sim.copy()
    np.fill_diagonal(sim, -np.inf)
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return {(min(i, int(j)), max(i, int(j))) for i in range(len(sim)) for j in top[i]}


def candidate_pairs(features: list[Features], k: int, ratio: float = 0.8, device=None) -> list[tuple[int, int]]:
    """Pairs (i < j) where j is among i's ``k`` best by the first pass (``ratio``: the verifier's
    Lowe ratio) or its ``GLOBAL_K`` best by VLAD cosine, or i among j's."""
    n = len(features)
    if n <= k + 1:
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    v = global_descriptors(features)
    return sorted(_top(first_pass(features, ratio, device=device), k) | _top(v @ v.T, min(k, GLOBAL_K)))
