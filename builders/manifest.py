"""The on-disk dataset contract shared by builders and the harness.

A dataset is a folder holding image files, ``manifest.parquet`` (one row per sample), ``spec.yaml``
(what made it) and ``metadata.jsonl`` (HuggingFace ``imagefolder`` metadata: one per split folder
when the images live under ``train/``/``test/``, else one at the root). Paths in the manifest
are relative to the folder and may never escape it. Datasets are written into a temporary sibling
folder and renamed into place, so an interrupted build leaves nothing half-written.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

MANIFEST = "manifest.parquet"
SPEC = "spec.yaml"
METADATA = "metadata.jsonl"

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
        spec = yaml.safe_load((root / SPEC).read_text()) if (root / SPEC).is_file() else {}
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


class DatasetWriter:
    """Write a dataset into a temporary sibling folder; rename it into place on success.

    >>> with DatasetWriter(out) as tmp:   # tmp is the folder to fill
    ...     write images, then write_dataset_files(tmp, manifest, spec)
    """

    def __init__(self, out: str | os.PathLike, overwrite: bool = False):
        self.out = Path(out)
        self.overwrite = overwrite
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        if self.out.exists() and not self.overwrite:
            raise DatasetError(f"{self.out} exists; pass --overwrite to replace it")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        os.chmod(self.tmp, 0o755)  # mkdtemp makes it private; a dataset is for everyone who can read its parent
        if self.out.exists():
            trash = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            os.replace(self.out, trash)
            os.replace(self.tmp, self.out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(self.tmp, self.out)


#: Manifest columns holding image paths, and their names in imagefolder metadata (``*_file_name``
#: columns become image features; ``file_name`` is the primary ``image``).
IMAGE_COLUMNS = {"hr": "file_name", "ref": "ref_file_name", "lr": "lr_file_name"}


def _json_value(v):
    return v.item() if hasattr(v, "item") else v


def _metadata(df: pd.DataFrame) -> dict[str, list[dict]]:
    """imagefolder metadata records by the folder they go in.

    ``imagefolder`` takes splits from top-level ``train/``/``test/`` folders and then reads a
    ``metadata.jsonl`` inside each of them (paths relative to it), which must all have the same
    columns; otherwise it reads one at the root. So only columns set in every row are exported
    (the manifest keeps everything).
    """
    full = [c for c in df.columns if df[c].notna().all() and not (df[c].astype(str) == "").any()]
    images = [c for c in IMAGE_COLUMNS if c in full]
    splits = sorted(df["split"].unique())
    per_split = all(df.loc[df["split"] == sp, c].str.startswith(f"{sp}/").all() for sp in splits for c in images)
    out: dict[str, list[dict]] = {}
    for row in df[full].to_dict("records"):
        folder = str(row["split"]) if per_split else ""
        rec = {k: _json_value(v) for k, v in row.items() if k not in IMAGE_COLUMNS}
        for c in images:
            rec[IMAGE_COLUMNS[c]] = row[c][len(folder) + 1:] if folder else row[c]
        out.setdefault(folder, []).append(rec)
    return out


def write_dataset_files(folder: Path, manifest: pd.DataFrame, spec: dict) -> None:
    """Write manifest, spec and imagefolder metadata into ``folder`` (inside a DatasetWriter)."""
    write_manifest(manifest, folder)
    (folder / SPEC).write_text(yaml.safe_dump(spec, sort_keys=True, allow_unicode=True))
    for sub, records in _metadata(normalise_manifest(manifest)).items():
        with open(folder / sub / METADATA, "w") as f:
            for rec in records:
                f.write(json.dumps(rec, sort_keys=True) + "\n")
