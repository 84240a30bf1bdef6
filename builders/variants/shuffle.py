"""``shuffle:N``: the reference cut into an N×N grid of tiles whose positions are permuted (FRFSR).

FRFSR's robustness test uses easy 2×2, medium 4×4 and hard 8×8 (aliases ``shuffle:easy|medium|hard``).
Tiles are ``H//N × W//N``; the remainder rows (bottom) and columns (right) are either left in place
(``keep``, default) or zeroed (``shuffle:N:zero``, as FRFSR's training code does: it unfolds ``H//5 × W//5`` tiles and folds
them back, zeroing what no tile covers; its grid is 5×5 only when that covers the image). The permutation is redrawn if it is the identity, so the reference is
always actually shuffled; it is recorded row-major.
"""
from __future__ import annotations

import numpy as np

from . import register_variant
from ._base import Variant, VariantError, require_ref

ALIASES = {"easy": 2, "medium": 4, "hard": 8}
REMAINDERS = ("keep", "zero")


class Shuffle(Variant):
    def __init__(self, n: int, remainder: str = "keep"):
        if n < 2:
            raise ValueError(f"shuffle needs a grid of at least 2×2, got {n}")
        if remainder not in REMAINDERS:
            raise ValueError(f"shuffle remainder must be one of {REMAINDERS}, got {remainder!r}")
        self.n, self.remainder = n, remainder
        self.name = f"shuffle:{n}" + ("" if remainder == "keep" else f":{remainder}")
        self.params = {"grid": n, "remainder": remainder}

    def transform(self, inp, rng):
        ref = require_ref(inp)
        n = self.n
        h, w = ref.shape[0] // n, ref.shape[1] // n
        if h == 0 or w == 0:
            raise VariantError("too-small", f"reference {ref.shape[:2]} is smaller than a {n}×{n} grid")
        perm = rng.permutation(n * n)
        while np.array_equal(perm, np.arange(n * n)):
            perm = rng.permutation(n * n)
        out = ref.copy() if self.remainder == "keep" else np.zeros_like(ref)
        for dst, src in enumerate(perm):
            dy, dx = divmod(dst, n)
            sy, sx = divmod(int(src), n)
            out[dy * h:(dy + 1) * h, dx * w:(dx + 1) * w] = ref[sy * h:(sy + 1) * h, sx * w:(sx + 1) * w]
        record = {"perm": [int(p) for p in perm], "tile": [h, w],
                  "remainder_rows": ref.shape[0] - n * h, "remainder_cols": ref.shape[1] - n * w}
        return out, record


@register_variant("shuffle", "shuffle:N[:zero] (N: 2|4|8 or easy|medium|hard)", example="shuffle:4")
def make(arg: str | None) -> Variant:
    if not arg:
        raise ValueError("shuffle needs a grid size: shuffle:N, e.g. shuffle:4 or shuffle:medium")
    grid, _, remainder = arg.partition(":")
    n = ALIASES.get(grid)
    if n is None:
        if not grid.isdigit():
            raise ValueError(f"shuffle grid must be an integer or one of {sorted(ALIASES)}, got {grid!r}")
        n = int(grid)
    return Shuffle(n, remainder or "keep")
