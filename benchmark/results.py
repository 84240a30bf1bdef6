"""A run's results: tidy rows, written atomically in parts, resumable without duplicates.

While a run goes on, rows are flushed as ``parts/<n>.parquet`` (each written to a temporary file
and renamed). A re-run reads the parts, skips every (job, image) already there, and at the end
merges everything into ``results.parquet``, dropping any duplicate key and sorting stably, so an
interrupted-then-resumed run gives the same rows as an uninterrupted one.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from core.files import atomic_write_with

#: Identity of a row: one value per (suite, model, weights, dataset, split, variant, level, image,
#: protocol, metric). ``model`` is ``name[.tag]``; ``weights`` says whether the files were the
#: official ones (``official``), other files (``custom``) or none were needed (``none``);
#: ``weights_sha256`` is a JSON object role -> sha256 of every file loaded.
KEY = ["suite", "model", "weights", "dataset", "split", "variant", "level", "image", "protocol", "metric"]
COLUMNS = KEY + ["value", "higher_is_better", "status", "reason", "protocol_hash", "weights_tag",
                 "weights_sha256", "device", "dtype", "seed", "git_sha", "dataset_hash", "versions"]
RESULTS = "results.parquet"


def atomic_to_parquet(df: pd.DataFrame, path: Path) -> None:
    atomic_write_with(path, lambda tmp: df.to_parquet(tmp, index=False))


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Column order, dtypes, duplicates dropped (first kept), stable sort by key."""
    df = df.reindex(columns=COLUMNS)
    df = df.astype({"level": "int64", "value": "float64", "seed": "int64", "higher_is_better": "bool"})
    df = df.drop_duplicates(subset=KEY, keep="first")
    return df.sort_values(KEY, kind="stable").reset_index(drop=True)


class ResultStore:
    """Append-only parts under ``<run>/parts`` plus the merged ``results.parquet``."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.parts = self.run_dir / "parts"
        self.parts.mkdir(parents=True, exist_ok=True)
        self._pending: list[dict] = []

    def load(self) -> pd.DataFrame:
        """Every row written so far (parts and a previous merge), normalised."""
        frames = [pd.read_parquet(p) for p in sorted(self.parts.glob("*.parquet"))]
        if (self.run_dir / RESULTS).is_file():
            frames.append(pd.read_parquet(self.run_dir / RESULTS))
        if not frames:
            return normalise(pd.DataFrame(columns=COLUMNS))
        return normalise(pd.concat(frames, ignore_index=True))

    def done_images(self) -> set[tuple[str, str, str, str, str]]:
        """(model, weights, dataset, variant, image) whose rows are all written."""
        df = self.load()
        return set(map(tuple, df[["model", "weights", "dataset", "variant", "image"]].drop_duplicates().values))

    def add(self, rows: list[dict]) -> None:
        self._pending.extend(rows)

    def flush(self) -> None:
        """Write pending rows as a new part (atomic); an interruption loses at most unflushed images.

        Part names carry the process id and a clock, so shards running at once never collide.
        """
        if not self._pending:
            return
        name = f"{time.time_ns():020d}-{os.getpid()}.parquet"
        atomic_to_parquet(normalise(pd.DataFrame(self._pending)), self.parts / name)
        self._pending = []

    def merge(self) -> pd.DataFrame:
        """Write ``results.parquet`` from everything written, then drop the parts it merged
        (only those: another shard may be adding parts meanwhile)."""
        self.flush()
        parts = sorted(self.parts.glob("*.parquet"))
        frames = [pd.read_parquet(p) for p in parts]
        if (self.run_dir / RESULTS).is_file():
            frames.append(pd.read_parquet(self.run_dir / RESULTS))
        df = normalise(pd.concat(frames, ignore_index=True)) if frames else normalise(pd.DataFrame(columns=COLUMNS))
        atomic_to_parquet(df, self.run_dir / RESULTS)
        for p in parts:
            p.unlink(missing_ok=True)
        return df
