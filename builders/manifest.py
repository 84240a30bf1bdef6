"""The on-disk dataset contract shared by builders and the harness.

A dataset is a folder holding image files, ``manifest.parquet`` (one row per sample), ``spec.yaml``
(what made it) and ``<split>/metadata.parquet`` (HuggingFace ``imagefolder`` metadata, so
``datasets.load_dataset("imagefolder", data_dir=...)`` loads it: the images of a sample live under
its split's folder). Paths in the manifest are relative to the folder and may never escape it. This module reads datasets;
:mod:`builders.writer` is the one place that writes them (atomically).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.yaml_io import load_yaml

if TYPE_CHECKING:  # pandas is imported when a manifest is read, not when dataset names are listed
    import pandas as pd

MANIFEST = "manifest.parquet"
SPEC = "spec.yaml"
METADATA = "metadata.parquet"

#: Columns every manifest has. ``level`` is 1 (most similar) … N, or 0 when there is no reference;
#: ``ref`` is "" when the sample has none. Builders may add more columns (scores, crop boxes …).
REQUIRED_COLUMNS = {
    "sample_id": "string",
    "split": "string",
    "group": "string",
    "level": "int64",
    "hr": "string",
    "ref": "string",
}


class DatasetError(ValueError):
    """A dataset folder that is missing, malformed or unsafe."""


def safe_path(root: Path, rel: str) -> Path:
    """Resolve ``rel`` inside ``root``; refuse absolute paths and anything that escapes ``root``."""
    if not rel:
        raise DatasetError("empty path in manifest")
    if os.path.isabs(rel) or "\\" in rel:
        raise DatasetError(f"manifest path {rel!r} must be relative with '/' separators")
    root_r = root.resolve()
    full = (root_r / rel).resolve()
    if full != root_r and root_r not in full.parents:
        raise DatasetError(f"manifest path {rel!r} escapes the dataset root {root}")
    return full


def normalise_manifest(df: pd.DataFrame) -> pd.DataFrame:
    """Check required columns, fix dtypes, sort by ``sample_id`` for byte-stable output."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DatasetError(f"manifest lacks columns {missing}")
    if df["sample_id"].duplicated().any():
        dup = df.loc[df["sample_id"].duplicated(), "sample_id"].tolist()[:5]
        raise DatasetError(f"duplicate sample_id in manifest: {dup}")
    df = df.copy()
    df["ref"] = df["ref"].fillna("")
    df = df.astype({c: ("int64" if t == "int64" else "string") for c, t in REQUIRED_COLUMNS.items()})
    first = list(REQUIRED_COLUMNS)
    df = df[first + sorted(c for c in df.columns if c not in REQUIRED_COLUMNS)]
    return df.sort_values("sample_id", kind="stable").reset_index(drop=True)


def write_manifest(df: pd.DataFrame, folder: Path) -> None:
    """Write ``manifest.parquet`` deterministically (same frame → same bytes)."""
    df = normalise_manifest(df)
    df.to_parquet(folder / MANIFEST, index=False, compression="zstd")


@dataclass
class Dataset:
    """A dataset folder opened for reading."""

    root: Path
    spec: dict
    manifest: pd.DataFrame

    @classmethod
    def open(cls, root: str | os.PathLike) -> "Dataset":
        root = Path(root)
        if not (root / MANIFEST).is_file():
            raise DatasetError(f"{root} is not a dataset: no {MANIFEST} (build one with builders.build "
                               f"or import one with builders.import)")
        spec = load_yaml((root / SPEC).read_text()) if (root / SPEC).is_file() else {}
        import pandas as pd

        df = normalise_manifest(pd.read_parquet(root / MANIFEST))
        for col in ("hr", "ref"):
            for rel in df[col]:
                if rel:
                    safe_path(root, rel)
        return cls(root=root, spec=spec or {}, manifest=df)

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or self.root.name)

    def path(self, rel: str) -> Path:
        return safe_path(self.root, rel)

    def fingerprint(self) -> str:
        """sha256 of the manifest file: identifies this exact dataset in results."""
        return hashlib.sha256((self.root / MANIFEST).read_bytes()).hexdigest()[:16]

    def samples(self, split: str | None = None, levels: list[int] | None = None) -> pd.DataFrame:
        df = self.manifest
        if split is not None:
            df = df[df["split"] == split]
        if levels is not None:
            df = df[df["level"].isin(levels)]
        return df

    @property
    def levels(self) -> list[int]:
        return sorted(int(v) for v in self.manifest["level"].unique())
