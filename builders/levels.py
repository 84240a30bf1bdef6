"""Similarity levels L1 (most similar) … LN from pair scores (SIFT match counts).

Three declared methods, all recorded in the dataset spec:

- ``quantiles`` (default): per album, the N-1 cut points are the quantiles 1-1/N, 1-2/N … of the
  scores of all the album's scored pairs, so every album spans L1..LN on its own scale;
- ``thresholds``: fixed descending match counts ``t1 > t2 > … > t(N-1)``; a pair is L1 when its
  score is ≥ t1, L2 when ≥ t2, …, LN otherwise (comparable across albums, like the paper's counts);
- ``rank``: per HR image, its candidate references sorted by score are split into N equal rank
  bins (an album of N+1 images gives exactly one reference per level; for small albums).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import option

METHODS = ("quantiles", "thresholds", "rank")


@dataclass(frozen=True)
class LevelConfig:
    n: int = option(5, "number of similarity levels N", flag="--levels")
    method: str = option("quantiles", "how scores become levels (see below)", flag="--level-method", choices=METHODS)
    thresholds: tuple[float, ...] = option(help="N-1 decreasing match counts (implies --level-method thresholds)",
                                           factory=tuple)

    def __post_init__(self):
        if self.n < 1:
            raise ValueError("the number of levels must be >= 1")
        if self.method not in METHODS:
            raise ValueError(f"level method must be one of {METHODS}, got {self.method!r}")
        if self.method == "thresholds":
            t = list(self.thresholds)
            if len(t) != self.n - 1 or any(a <= b for a, b in zip(t, t[1:])):
                raise ValueError(f"thresholds must be {self.n - 1} strictly decreasing match counts, got {t}")


def album_edges(scores: list[float], cfg: LevelConfig) -> list[float]:
    """The N-1 descending cut points for one album (empty for the per-HR ``rank`` method)."""
    if cfg.method == "thresholds":
        return [float(t) for t in cfg.thresholds]
    if cfg.method == "rank" or cfg.n == 1 or not scores:
        return []
    qs = [1.0 - k / cfg.n for k in range(1, cfg.n)]
    return [float(v) for v in np.quantile(np.asarray(scores, np.float64), qs)]


def level_of(score: float, edges: list[float]) -> int:
    """1 + the number of cut points the score falls below (ties go to the more similar level)."""
    return 1 + sum(score < e for e in edges)


def assign(candidates: list[tuple[str, float]], edges: list[float], cfg: LevelConfig) -> dict[str, int]:
    """Level of each (name, score) candidate reference of one HR image."""
    if cfg.method != "rank":
        return {name: level_of(score, edges) for name, score in candidates}
    order = sorted(candidates, key=lambda c: (-c[1], c[0]))
    m = len(order)
    return {name: 1 + (r * cfg.n) // m for r, (name, _) in enumerate(order)}


def pick_one_per_level(candidates: list[tuple[str, float]], levels: dict[str, int], n: int
                       ) -> tuple[dict[int, str], list[int]]:
    """For each level, the highest-scoring candidate in it (ties: name order); and the empty levels."""
    chosen: dict[int, tuple[float, str]] = {}
    for name, score in candidates:
        lv = levels[name]
        best = chosen.get(lv)
        if best is None or (-score, name) < (-best[0], best[1]):
            chosen[lv] = (score, name)
    missing = [k for k in range(1, n + 1) if k not in chosen]
    return {k: v[1] for k, v in sorted(chosen.items())}, missing
