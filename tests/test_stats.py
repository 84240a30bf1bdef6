"""Bootstrap intervals against the normal approximation and a float64 re-derivation."""
import numpy as np

from benchmark.stats import bootstrap_ci, paired_difference


def test_bootstrap_interval_matches_the_normal_approximation_for_many_images():
    x = np.random.default_rng(1).normal(30.0, 2.0, 400)
    lo, hi = bootstrap_ci(x)
    se = x.std(ddof=0) / np.sqrt(len(x))
    assert abs(lo - (x.mean() - 1.96 * se)) < 0.03 and abs(hi - (x.mean() + 1.96 * se)) < 0.03
    assert bootstrap_ci(x) == bootstrap_ci(x)  # seeded
    assert np.isnan(bootstrap_ci([1.0])[0])


def test_paired_difference_sees_a_consistent_small_gain():
    rng = np.random.default_rng(2)
    b = rng.normal(28, 3, 50)  # large spread between images ...
    a = b + 0.1 + rng.normal(0, 0.02, 50)  # ... but A is better on every one
    d = paired_difference(a, b)
    assert d["n"] == 50 and d["ci_low"] > 0.08 and d["ci_high"] < 0.12 and d["a_better_share"] == 1.0
    unpaired_lo, unpaired_hi = bootstrap_ci(a)
    assert unpaired_hi - unpaired_lo > 10 * (d["ci_high"] - d["ci_low"])
