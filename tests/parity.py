"""Shared check for parity tests: our intermediates against the ones the official code stored."""
from __future__ import annotations


def assert_intermediates_match(ours: dict[str, dict], theirs: dict[str, dict], atol: float = 1e-4) -> None:
    """Every named group of tensors has the official keys, shapes and values (max abs diff <= ``atol``)."""
    for name, group in ours.items():
        assert set(group) == set(theirs[name]), name
        for k, want in theirs[name].items():
            assert group[k].shape == want.shape, (name, k)
            assert (group[k] - want).abs().max() <= atol, (name, k)
