"""Level assignment: quantiles per album, fixed thresholds, per-HR rank bins; one reference per level."""
import pytest

from builders.levels import LevelConfig, album_edges, assign, level_of, pick_one_per_level


def test_quantile_edges_split_an_album_into_equal_bins():
    cfg = LevelConfig(n=4, method="quantiles")
    scores = list(range(1, 101))
    edges = album_edges(scores, cfg)
    assert edges == sorted(edges, reverse=True) and len(edges) == 3
    counts = [sum(level_of(s, edges) == k for s in scores) for k in (1, 2, 3, 4)]
    assert counts == [25, 25, 25, 25]


def test_thresholds_are_match_counts():
    cfg = LevelConfig(n=3, method="thresholds", thresholds=(100, 10))
    edges = album_edges([5, 50, 500], cfg)
    assert [level_of(s, edges) for s in (500, 100, 99, 10, 9, 0)] == [1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError):
        LevelConfig(n=3, method="thresholds", thresholds=(10, 100))
    with pytest.raises(ValueError):
        LevelConfig(n=3, method="thresholds", thresholds=(10,))


def test_rank_bins_per_hr_and_pick_one_per_level():
    cfg = LevelConfig(n=2, method="rank")
    cands = [("a", 5.0), ("b", 50.0), ("c", 20.0), ("d", 1.0)]
    levels = assign(cands, [], cfg)
    assert levels == {"b": 1, "c": 1, "a": 2, "d": 2}
    chosen, missing = pick_one_per_level(cands, levels, 2)
    assert chosen == {1: "b", 2: "a"} and missing == []
    chosen, missing = pick_one_per_level(cands, {"a": 1, "b": 1, "c": 1, "d": 1}, 2)
    assert missing == [2]

