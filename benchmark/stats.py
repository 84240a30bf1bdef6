"""Uncertainty of the reported means: percentile bootstrap confidence intervals over images.

A mean over 5 or 126 images is an estimate; the interval says how far it may move with other
images of the same kind. Paired differences resample the images both models were scored on, so
"is A really better than B on this split?" has an answer. Resampling is seeded: the same rows
give the same intervals.
"""
from __future__ import annotations

import numpy as np

RESAMPLES = 10_000


def bootstrap_ci(values, level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN for fewer than two values)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_difference(a, b, level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Mean of ``a - b`` over paired images, its bootstrap interval, and the share of images where a > b."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d = d[np.isfinite(d)]
    lo, hi = bootstrap_ci(d, level, resamples, seed)
    return {"n": int(len(d)), "mean_diff": float(d.mean()) if len(d) else float("nan"), "ci_low": lo, "ci_high": hi,
            "a_better_share": float((d > 0).mean()) if len(d) else float("nan")}
