"""The one dataset writer: recipes, importers and variants plan rows, this module writes them.

A maker (album recipe, importer of an official layout, robustness variant) yields :class:`Row`
objects, HuggingFace ``_generate_examples`` style: the manifest fields of one sample plus the image
files that sample needs, each one of

- :class:`Array`: write this uint8 RGB array as PNG;
- :class:`Source`: hard-link (or copy) this existing file, or re-encode it as 8-bit RGB PNG when
  ``convert`` is set (grayscale, alpha, 16-bit inputs);
- :class:`Written`: already produced by an earlier row (a group's shared HR).

:func:`write_dataset` puts the files into a temporary sibling of the output folder, writes
``manifest.parquet``, ``spec.yaml`` (one layout for every kind, see :func:`make_spec`) and the
imagefolder ``metadata.jsonl``, and renames the folder into place: an interrupted build leaves
nothing half-written. A manifest field may be :class:`Digest` (sha256 prefix of a file the writer
produced), resolved once every file is written.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from core.files import link_or_copy, output_problem
from core.provenance import versions

from .images import read_rgb, write_png
from .manifest import METADATA, SPEC, DatasetError, normalise_manifest, safe_path, write_manifest
from .report import BuildReport

KINDS = ("recipe", "import", "variant")


@dataclass(frozen=True)
class Array:
    """Write ``array`` (uint8 RGB) as PNG."""

    array: np.ndarray


@dataclass(frozen=True)
class Source:
    """Hard-link or copy ``path`` (``convert``: decode to 8-bit RGB and write PNG instead)."""

    path: Path
    convert: bool = False


@dataclass(frozen=True)
class Written:
    """A file an earlier row of the same dataset already produced."""


@dataclass(frozen=True)
class Digest:
    """A manifest value: the first ``n`` hex digits of the sha256 of the dataset file ``rel``."""

    rel: str
    n: int = 16


@dataclass
class Row:
    """One manifest row and the files (dataset-relative path -> what to put there) it needs."""

    fields: dict
    files: dict[str, Array | Source | Written] = field(default_factory=dict)


def make_spec(*, name: str, kind: str, created_by: str, version: str, config: dict, seed: int,
              source: str | None = None, base: dict | None = None, inputs: dict | None = None) -> dict:
    """The one ``spec.yaml`` layout (``versions`` and ``report`` are added by :func:`write_dataset`).

    ``created_by`` is the maker's registered name (recipe, importer layout or variant), ``version``
    its version; ``source`` is the folder read (recipes, importers), ``base`` the dataset derived from
    (variants).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    spec = {"name": name, "kind": kind, "created_by": created_by, "version": str(version), "config": config,
            "seed": int(seed), "inputs": inputs or {}}
    if source is not None:
        spec["source"] = source
    if base is not None:
        spec["base"] = base
    return spec


def check_target(out: str | os.PathLike, overwrite: bool) -> None:
    """Refuse to start work whose result could not be written: ``out`` exists (no ``overwrite``), or
    where it goes is not a writable folder with free space (:func:`core.files.output_problem`)."""
    if Path(out).exists() and not overwrite:
        raise DatasetError(f"{out} exists; pass --overwrite to replace it")
    problem = output_problem(out)
    if problem:
        raise DatasetError(problem)


class DatasetFolder:
    """A temporary sibling of ``out`` to fill; renamed into place on success, removed on failure.

    >>> with DatasetFolder(out) as tmp:
    ...     ...  # write into tmp
    """

    def __init__(self, out: str | os.PathLike, overwrite: bool = False):
        self.out = Path(out)
        self.overwrite = overwrite
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        check_target(self.out, self.overwrite)
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


def ordered_map(fn: Callable, items: Iterable, jobs: int) -> Iterator:
    """``map(fn, items)`` on ``jobs`` threads, results in input order, at most ``2 * jobs`` pending
    (so a generator of large arrays is never held whole in memory)."""
    if jobs <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(jobs) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _place(tmp: Path, rel: str, what: Array | Source, link: bool) -> str:
    """Put one file into the dataset; return how (written / linked / copied / converted)."""
    dst = safe_path(tmp, rel)
    if isinstance(what, Array):
        write_png(dst, what.array)
        return "written"
    if what.convert:
        write_png(dst, read_rgb(what.path)[0])
        return "converted"
    return link_or_copy(what.path, dst, link)


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
    """Write manifest, spec and imagefolder metadata into ``folder`` (a :class:`DatasetFolder`)."""
    write_manifest(manifest, folder)
    (folder / SPEC).write_text(yaml.safe_dump(spec, sort_keys=True, allow_unicode=True))
    for sub, records in _metadata(normalise_manifest(manifest)).items():
        with open(folder / sub / METADATA, "w") as f:
            for rec in records:
                f.write(json.dumps(rec, sort_keys=True) + "\n")


def write_dataset(out: str | os.PathLike, rows: Iterable[Row], spec: dict, report: BuildReport, *,
                  columns: dict[str, str | None] | list[str] | None = None, overwrite: bool = False,
                  jobs: int = 1, link: bool = True, tables: dict[str, Callable[[], pd.DataFrame]] | None = None,
                  ) -> pd.DataFrame:
    """Write ``rows`` as the dataset ``out``; return its manifest.

    ``columns``: the manifest's columns in order, or {column: dtype} to cast (``None`` keeps the
    inferred dtype); default: the fields of the rows. ``tables``: extra parquet files (name ->
    function returning the frame), e.g. a recipe's scored pairs. The report counts the samples per
    (split, level) and the files by how they got there, and is finished and saved in the spec.
    """
    t0 = time.perf_counter()
    placed: dict[str, Array | Source] = {}

    def files_of(row: Row) -> list[tuple[str, Array | Source]]:
        todo = []
        for rel, what in row.files.items():
            if isinstance(what, Written):
                if rel not in placed:
                    raise DatasetError(f"{rel} is marked written but no earlier row produced it")
            elif rel in placed:
                if not (isinstance(what, Source) and placed[rel] == what):
                    raise DatasetError(f"two different files planned at {rel}")
            else:
                placed[rel] = what if isinstance(what, Source) else None
                todo.append((rel, what))
        return todo

    with DatasetFolder(out, overwrite=overwrite) as tmp:
        fields: list[dict] = []
        hows = ordered_map(lambda todo: [_place(tmp, rel, what, link) for rel, what in todo],
                           ((fields.append(r.fields) or files_of(r)) for r in rows), jobs)
        for done in hows:
            for how in done:
                report.files[how] += 1
        digests: dict[str, str] = {}

        def resolve(v):
            if not isinstance(v, Digest):
                return v
            if v.rel not in digests:
                digests[v.rel] = hashlib.sha256(safe_path(tmp, v.rel).read_bytes()).hexdigest()
            return digests[v.rel][: v.n]

        if not fields:  # an empty dataset is always a mistake (wrong layout, wrong folder): nothing is kept
            skipped = ", ".join(f"{k}={v}" for k, v in sorted(report.skipped.items())) or "none"
            raise DatasetError(f"no samples to write to {out}: every input was skipped (skipped: {skipped}); "
                               "check the source folder and the layout or recipe options")
        fields = [{k: resolve(v) for k, v in f.items()} for f in fields]
        for f in fields:
            report.samples[(f["split"], int(f["level"]))] += 1
        cols = list(columns) if columns is not None else list(dict.fromkeys(k for f in fields for k in f))
        manifest = pd.DataFrame(fields, columns=cols)
        if isinstance(columns, dict):
            manifest = manifest.astype({c: t for c, t in columns.items() if t is not None})
        for name, make in (tables or {}).items():
            make().to_parquet(tmp / name, index=False, compression="zstd")
        report.stage("writing", time.perf_counter() - t0)
        report.finish()
        spec = {**spec, "versions": versions(), "report": report.to_dict()}
        write_dataset_files(tmp, manifest, spec)
    return manifest
