"""A tiny CUFED5-layout dataset for harness tests: textured HRs and shifted-crop references."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from builders.report import BuildReport
from builders.writer import Array, Row, Written, make_spec, write_dataset


def _rows(groups: int, levels: int, size: int):
    rng = np.random.default_rng(0)
    for g in range(groups):
        big = rng.integers(0, 256, size=(size + 16, size + 16, 3), dtype=np.uint8)
        big = np.repeat(np.repeat(big[::4, ::4], 4, 0), 4, 1)[: size + 16, : size + 16]
        hr_rel = f"test/{g:03d}_0.png"
        hr = {hr_rel: Array(np.ascontiguousarray(big[:size, :size]))}
        for k in range(1, levels + 1):
            ref = np.ascontiguousarray(big[4 * k: 4 * k + size, 4 * k: 4 * k + size])
            yield Row({"sample_id": f"{g:03d}_L{k}", "split": "test", "group": f"{g:03d}", "level": k,
                       "hr": hr_rel, "ref": f"test/{g:03d}_{k}.png"}, {**hr, f"test/{g:03d}_{k}.png": Array(ref)})
            hr = {hr_rel: Written()}


def make_tiny_dataset(out: Path, groups: int = 3, levels: int = 2, size: int = 48) -> Path:
    spec = make_spec(name=out.name, kind="recipe", created_by="test-fixture", version="1", config={}, seed=0)
    write_dataset(out, _rows(groups, levels, size), spec, BuildReport("test-fixture"))
    return out
