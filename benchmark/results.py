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

from core.files import atomic_write_with, locked

#: Identity of a row: one value per (suite, model, weights, dataset, split, variant, level, image,
#: protocol, metric). ``model`` is ``name[.tag]``; ``weights`` says whether the files were the
#: official ones (``official``), other files (``custom``) or none were needed (``none``);
#: ``weights_sha256`` is a JSON object role -> sha256 of every file loaded.
KEY = ["suite", "model", "weights", "dataset", "split", "variant", "level", "image", "protocol", "metric"]
COLUMNS = KEY + ["value", "higher_is_better", "status", "reason", "protocol_hash", "weights_tag",
                 "weights_sha256", "device", "dtype", "seed", "git_sha", "dataset_hash", "versions"]
RESULTS = "results.parquet"
TIMINGS = "timings.parquet"
LOCK = ".results.lock"  # taken by merges of results and of timings
#: one forward time per (model, dataset, variant, image, protocol): a later measurement replaces an earlier one
TIMING_KEY = ["model", "dataset", "variant", "image", "protocol"]


def atomic_to_parquet(df: pd.DataFrame, path: Path) -> None:
    atomic_write_with(path, lambda tmp: df.to_parquet(tmp, index=False))


#: What a row was computed from: a row is reused on resume only if all of these still match.
PROVENANCE_KEY = ["dataset_hash", "protocol_hash", "weights_sha256", "seed", "dtype"]


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Column order, dtypes, duplicates dropped (the last written kept: a recomputed row replaces a
    stale or failed one), stable sort by key."""
    df = df.reindex(columns=COLUMNS)
    df = df.astype({"level": "int64", "value": "float64", "seed": "int64", "higher_is_better": "bool"})
    df = df.drop_duplicates(subset=KEY, keep="last")
    return df.sort_values(KEY, kind="stable").reset_index(drop=True)


class ResultStore:
    """Append-only parts under ``<run>/parts`` plus the merged ``results.parquet``."""

    #: pending rows are written at most this often (an interruption loses at most these seconds)
    FLUSH_SECONDS = 5.0

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.parts = self.run_dir / "parts"
        self.parts.mkdir(parents=True, exist_ok=True)
        self._pending: list[dict] = []
        self._last_flush = time.monotonic()

    def _lock(self):
        return locked(self.run_dir / LOCK)

    def _read_all(self) -> tuple[pd.DataFrame, list[Path]]:
        """The merged results then every part in write order (later rows win), and the parts read."""
        parts = sorted(self.parts.glob("*.parquet"))
        frames = [pd.read_parquet(self.run_dir / RESULTS)] if (self.run_dir / RESULTS).is_file() else []
        frames += [pd.read_parquet(p) for p in parts]
        df = normalise(pd.concat(frames, ignore_index=True)) if frames else normalise(pd.DataFrame(columns=COLUMNS))
        return df, parts

    def load(self) -> pd.DataFrame:
        """Every row written so far (a previous merge and the parts since), normalised."""
        with self._lock():
            return self._read_all()[0]

    def done_images(self) -> set[tuple]:
        """(model, weights, dataset, variant, image, *PROVENANCE_KEY) whose rows are all written and
        none failed: only those are skipped on resume (a failed image is tried again, and a row made
        from another dataset, protocol, weights file, seed or precision is recomputed)."""
        df = self.load()
        cols = ["model", "weights", "dataset", "variant", "image", *PROVENANCE_KEY]
        failed = df[df["status"] == "failed"][cols].drop_duplicates()
        done = df[cols].drop_duplicates()
        bad = set(map(tuple, failed.values))
        return {t for t in map(tuple, done.values) if t not in bad}

    def add(self, rows: list[dict]) -> None:
        self._pending.extend(rows)

    def maybe_flush(self) -> None:
        """Flush when :attr:`FLUSH_SECONDS` have passed since the last flush (one part file every few
        seconds instead of one per image)."""
        if time.monotonic() - self._last_flush >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write pending rows as a new part (atomic); an interruption loses at most unflushed images.

        Part names carry the process id and a clock, so shards running at once never collide.
        """
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        name = f"{time.time_ns():020d}-{os.getpid()}.parquet"
        atomic_to_parquet(normalise(pd.DataFrame(self._pending)), self.parts / name)
        self._pending = []

    def merge(self, current: dict[str, str] | None = None) -> pd.DataFrame:
        """Write ``results.parquet`` from everything written, then drop the parts it merged (only
        those: another shard may be adding parts meanwhile). Merges hold the run folder's lock, so
        two shards finishing at once never lose each other's rows. ``current`` maps a dataset to its
        fingerprint: rows of that dataset made from another version of it are dropped."""
        self.flush()
        with self._lock():
            df, parts = self._read_all()
            for dataset, fingerprint in (current or {}).items():
                df = df[(df["dataset"] != dataset) | (df["dataset_hash"] == fingerprint)].reset_index(drop=True)
            atomic_to_parquet(df, self.run_dir / RESULTS)
            for p in parts:
                p.unlink(missing_ok=True)
        return df


def save_timings(run_dir: str | os.PathLike, rows: list[dict], shard: tuple[int, int] = (0, 1)) -> None:
    """Add this session's forward times to the shard's timings file, then (under the run folder's
    lock) rebuild ``timings.parquet`` from every shard's file, so the last shard to finish leaves
    the complete table."""
    run_dir = Path(run_dir)
    k, n = shard
    own = run_dir / (TIMINGS if n == 1 else f"shards/timings-{k}-of-{n}.parquet")
    with locked(run_dir / LOCK):
        frames = [pd.read_parquet(own)] if own.is_file() else []
        atomic_to_parquet(_dedupe(pd.concat([*frames, pd.DataFrame(rows)], ignore_index=True)), own)
        if n > 1:
            parts = sorted((run_dir / "shards").glob(f"timings-*-of-{n}.parquet"))
            atomic_to_parquet(_dedupe(pd.concat([pd.read_parquet(f) for f in parts], ignore_index=True)),
                              run_dir / TIMINGS)


def _dedupe(df: pd.DataFrame) -> pd.DataFrame:
    key = [c for c in TIMING_KEY if c in df.columns]
    return df.drop_duplicates(key, keep="last").sort_values(key, kind="stable").reset_index(drop=True)
