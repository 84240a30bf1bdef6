"""Pieces every album recipe shares: config from dicts, album split assignment, writing the dataset."""
from __future__ import annotations

import dataclasses
import hashlib
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from core.provenance import versions
from core.seeding import keyed_rng

from ..albums import Album, pairs_table
from ..images import read_rgb, write_png
from ..manifest import write_dataset_files
from ..report import BuildReport

SPLITS = ("test", "train", "both")


#: Manifest columns (and dtypes) every pair-based recipe writes; recipes add their crop columns.
PAIR_COLUMNS = {
    "sample_id": "string", "split": "string", "group": "string", "level": "int64", "hr": "string",
    "ref": "string", "lr": "string", "album": "string", "hr_source": "string", "ref_source": "string",
    "score": "int64", "keypoints_hr": "int64", "keypoints_ref": "int64", "matches": "int64",
    "inliers": "int64", "scale": "int64", "lr_kernel": "string",
}

def config_from_dict(cls, data: dict | None, base=None):
    """A (nested) config dataclass from a plain dict over ``base`` (default: ``cls()``); unknown keys refused."""
    base = cls() if base is None else base
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        current = getattr(base, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            value = config_from_dict(type(current), value, current)
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return dataclasses.replace(base, **kwargs)


def as_config(cls, config):
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    return config_from_dict(cls, config)


def to_plain(config) -> dict:
    """Config as YAML-safe plain data (tuples become lists)."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(dataclasses.asdict(config))


def assign_splits(albums: list[Album], split: str, test_fraction: float, seed: int) -> dict[str, str]:
    """Album name -> 'test' | 'train'. For 'both', a seeded, order-independent share goes to test."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split != "both":
        return {a.name: split for a in albums}
    ranked = sorted(albums, key=lambda a: hashlib.sha256(f"{seed}:{a.name}".encode()).hexdigest())
    n_test = min(len(ranked) - 1, max(1, round(test_fraction * len(ranked)))) if len(ranked) > 1 else len(ranked)
    return {a.name: ("test" if k < n_test else "train") for k, a in enumerate(ranked)}


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """A generator that depends only on the seed and the keys (not on processing order)."""
    return keyed_rng(seed, *keys)


@lru_cache(maxsize=8)
def load_rgb(path: str) -> np.ndarray:
    rgb, _ = read_rgb(path)
    rgb.setflags(write=False)
    return rgb


def fit_long_side(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return img
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def save(folder: Path, rel: str, rgb: np.ndarray) -> str:
    write_png(folder / rel, rgb)
    return rel


def finish(folder: Path, rows: list[dict], albums: list[Album], spec: dict, report: BuildReport,
           columns: dict[str, str]) -> None:
    """Write manifest, pairs table, spec (with the report) and HF metadata into ``folder``."""
    manifest = pd.DataFrame(rows, columns=list(columns)).astype(columns)
    pairs_table(albums).to_parquet(folder / "pairs.parquet", index=False, compression="zstd")
    report.finish()
    used = sorted((rel, rec.sha256) for al in albums for rel, rec in zip(al.rel, al.images))
    inputs = {"images_used": len(used),
              "sha256": hashlib.sha256("\n".join(f"{r} {h}" for r, h in used).encode()).hexdigest()}
    spec = dict(spec, report=report.to_dict(), versions=versions(), inputs=inputs)
    write_dataset_files(folder, manifest, spec)

