"""Random generators that depend only on a seed and string keys.

Seeding from sha256 (not Python's salted ``hash``) makes a draw identical across runs, machines
and processing orders, so a sample's randomness never depends on which worker handled it.
"""
from __future__ import annotations

import hashlib

import numpy as np


def keyed_rng(seed: int, *keys: str) -> np.random.Generator:
    """A PCG64 generator seeded from sha256 of ``seed`` and ``keys`` (NUL-separated)."""
    digest = hashlib.sha256("\x00".join([str(int(seed)), *map(str, keys)]).encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def stable_fraction(*keys: str) -> float:
    """A number in [0, 1) from sha256 of ``keys``: for stable sharding and ordering."""
    digest = hashlib.sha256("\x00".join(map(str, keys)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64
