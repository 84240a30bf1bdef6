"""A tiny dataset with a train split (textured crops, shifted references) and a test split."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from builders.report import BuildReport
from builders.writer import Array, Row, make_spec, write_dataset


def _rows(n_train: int, size: int, n_test: int, test_size: int):
    rng = np.random.default_rng(0)

    def scene(side: int) -> np.ndarray:
        base = rng.integers(0, 256, size=(side // 8 + 3, side // 8 + 3, 3)).astype(np.float32)
        big = np.repeat(np.repeat(base, 8, 0), 8, 1)
        # smooth a little so that bicubic is not hopeless and there is something to learn
        big = (big + np.roll(big, 3, 0) + np.roll(big, 3, 1)) / 3
        return big.clip(0, 255).astype(np.uint8)

    for i in range(n_train):
        big = scene(size + 16)
        hr, ref = f"train/hr/{i:03d}.png", f"train/ref/{i:03d}.png"
        yield Row({"sample_id": f"train_{i:03d}", "split": "train", "group": f"a{i % 2}", "level": 1,
                   "hr": hr, "ref": ref},
                  {hr: Array(np.ascontiguousarray(big[:size, :size])),
                   ref: Array(np.ascontiguousarray(big[8:8 + size, 8:8 + size]))})
    for g in range(n_test):
        big = scene(test_size + 16)
        hr, ref = f"test/{g:03d}_0.png", f"test/{g:03d}_1.png"
        yield Row({"sample_id": f"{g:03d}_1", "split": "test", "group": f"{g:03d}", "level": 1, "hr": hr, "ref": ref},
                  {hr: Array(np.ascontiguousarray(big[:test_size, :test_size])),
                   ref: Array(np.ascontiguousarray(big[4:4 + test_size, 4:4 + test_size]))})


def make_train_dataset(out: Path, n_train: int = 8, size: int = 64, n_test: int = 2, test_size: int = 64) -> Path:
    spec = make_spec(name=out.name, kind="recipe", created_by="test-fixture", version="1", config={}, seed=0)
    write_dataset(out, _rows(n_train, size, n_test, test_size), spec, BuildReport("test-fixture"))
    return out
