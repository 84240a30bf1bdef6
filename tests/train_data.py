"""A tiny dataset with a train split (textured crops, shifted references) and a test split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from builders.images import write_png
from builders.manifest import DatasetWriter, write_dataset_files


def make_train_dataset(out: Path, n_train: int = 8, size: int = 64, n_test: int = 2, test_size: int = 64) -> Path:
    rng = np.random.default_rng(0)
    rows = []

    def scene(side: int) -> np.ndarray:
        base = rng.integers(0, 256, size=(side // 8 + 3, side // 8 + 3, 3)).astype(np.float32)
        big = np.repeat(np.repeat(base, 8, 0), 8, 1)
        # smooth a little so that bicubic is not hopeless and there is something to learn
        big = (big + np.roll(big, 3, 0) + np.roll(big, 3, 1)) / 3
        return big.clip(0, 255).astype(np.uint8)

    with DatasetWriter(out) as tmp:
        for i in range(n_train):
            big = scene(size + 16)
            write_png(tmp / f"train/hr/{i:03d}.png", np.ascontiguousarray(big[:size, :size]))
            write_png(tmp / f"train/ref/{i:03d}.png", np.ascontiguousarray(big[8:8 + size, 8:8 + size]))
            rows.append({"sample_id": f"train_{i:03d}", "split": "train", "group": f"a{i % 2}", "level": 1,
                         "hr": f"train/hr/{i:03d}.png", "ref": f"train/ref/{i:03d}.png"})
        for g in range(n_test):
            big = scene(test_size + 16)
            write_png(tmp / f"test/{g:03d}_0.png", np.ascontiguousarray(big[:test_size, :test_size]))
            write_png(tmp / f"test/{g:03d}_1.png", np.ascontiguousarray(big[4:4 + test_size, 4:4 + test_size]))
            rows.append({"sample_id": f"{g:03d}_1", "split": "test", "group": f"{g:03d}", "level": 1,
                         "hr": f"test/{g:03d}_0.png", "ref": f"test/{g:03d}_1.png"})
        write_dataset_files(tmp, pd.DataFrame(rows), {"name": out.name, "recipe": "test-fixture"})
    return out
