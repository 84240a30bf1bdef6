"""A tiny CUFED5-layout dataset for harness tests: textured HRs and shifted-crop references."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from builders.images import write_png
from builders.manifest import DatasetWriter, write_dataset_files


def make_tiny_dataset(out: Path, groups: int = 3, levels: int = 2, size: int = 48) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    with DatasetWriter(out) as tmp:
        for g in range(groups):
            big = rng.integers(0, 256, size=(size + 16, size + 16, 3), dtype=np.uint8)
            big = np.repeat(np.repeat(big[::4, ::4], 4, 0), 4, 1)[: size + 16, : size + 16]
            write_png(tmp / f"{g:03d}_0.png", np.ascontiguousarray(big[:size, :size]))
            for k in range(1, levels + 1):
                ref = np.ascontiguousarray(big[4 * k: 4 * k + size, 4 * k: 4 * k + size])
                write_png(tmp / f"{g:03d}_{k}.png", ref)
                rows.append({"sample_id": f"{g:03d}_L{k}", "split": "test", "group": f"{g:03d}", "level": k,
                             "hr": f"{g:03d}_0.png", "ref": f"{g:03d}_{k}.png"})
        write_dataset_files(tmp, pd.DataFrame(rows), {"name": out.name, "recipe": "test-fixture"})
    return out
