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
imagefolder ``<split>/metadata.parquet`` (a sample's images live under its split's folder), and
renames the folder into place: an interrupted build leaves nothing half-written. A manifest field may be :class:`Digest` (sha256 prefix of a file the writer
produced), resolved once every file is written.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from core.files import link_or_copy, output_problem
from core.provenance import versions

from .images import read_rgb, write_png
from .manifest import METADATA, SPEC, DatasetError, normalise_manifest, safe_path, write_manifest
from .report import BuildReport

if TYPE_CHECKING:  # imported where a manifest is made, so the CLIs' --help stays fast
    import pandas as pd
    import pyarrow as pa

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

    The sibling is named ``.OUT.tmp-PID@HOST-*``; siblings a killed build of the same ``out`` left
    behind (their process is gone from this host) are removed, with a warning, when the next one starts.
    """

    def __init__(self, out: str | os.PathLike, overwrite: bool = False):
        self.out = Path(out)
        self.overwrite = overwrite
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        check_target(self.out, self.overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(self.out)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-{os.getpid()}@{socket.gethostname()}-",
                                         dir=self.out.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        os.chmod(self.tmp, 0o755)  # mkdtemp makes it private; a dataset is for everyone who can read its parent
        if self.out.exists():
            trash = self.out.parent / f".{self.out.name}.old-{os.getpid()}@{socket.gethostname()}"
            os.replace(self.out, trash)
            os.replace(self.tmp, self.out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(self.tmp, self.out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # someone else's process
        return True
    return True


def remove_leftovers(out: Path) -> list[Path]:
    """Remove the temporary (``.OUT.tmp-*``) and replaced (``.OUT.old-*``) siblings of ``out`` whose
    process no longer runs on this host; folders of other hosts and of live processes stay."""
    removed = []
    name = re.escape(out.name)
    pattern = re.compile(rf"\.{name}\.tmp-(\d+)@(.+)-[a-z0-9_]{{8}}$|\.{name}\.old-(\d+)@(.+)$")
    for p in out.parent.glob(f".{glob.escape(out.name)}.*"):
        m = pattern.match(p.name)
        if not p.is_dir() or not m:
            continue
        pid, host = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        if host != socket.gethostname() or _alive(int(pid)):
            continue
        shutil.rmtree(p, ignore_errors=True)
        warnings.warn(f"removed {p}, left by a killed build of {out}", stacklevel=3)
        removed.append(p)
    return removed


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


#: Manifest columns holding image paths, and their names in imagefolder metadata (a
#: ``<name>_file_name`` column loads as the image feature ``<name>``).
IMAGE_COLUMNS = {"hr": "hr_file_name", "ref": "ref_file_name", "lr": "lr_file_name"}


def imagefolder_metadata(df: pd.DataFrame) -> dict[str, pa.Table]:
    """The imagefolder metadata of each split, by split name (written to ``<split>/metadata.parquet``).

    ``imagefolder`` takes the splits from top-level folders named after them, reads the metadata
    inside each (image paths relative to it, never leaving it) and needs one schema for all of them.
    So every image of a sample must lie under its split's folder (checked here: the layout is the
    makers'), and every manifest column goes out under one schema: a missing reference or LR image,
    or a value a split does not have (test rows have no crop boxes), is null.
    """
    import pandas as pd
    import pyarrow as pa

    df = df.copy()
    for col, name in IMAGE_COLUMNS.items():
        paths = df[col].fillna("").astype(str) if col in df.columns else pd.Series("", index=df.index)
        prefix = df["split"].astype(str) + "/"
        outside = [(sid, p) for sid, p, pre in zip(df["sample_id"], paths, prefix) if p and not p.startswith(pre)]
        if outside:
            sid, p = outside[0]
            raise DatasetError(f"{len(outside)} {col} image(s) outside their split's folder, e.g. sample {sid!r}: "
                               f"{p!r}; a sample's images go under <split>/ (imagefolder takes splits from folders)")
        rel = [p[len(pre):] if p else None for p, pre in zip(paths, prefix)]
        df = df.drop(columns=[col], errors="ignore")
        df[name] = pd.array(rel, dtype="string")
    schema = pa.Schema.from_pandas(df, preserve_index=False).remove_metadata()
    return {str(split): pa.Table.from_pandas(part, schema=schema, preserve_index=False)
            for split, part in df.groupby("split", sort=True)}


def write_dataset_files(folder: Path, manifest: pd.DataFrame, spec: dict) -> None:
    """Write manifest, spec and imagefolder metadata into ``folder`` (a :class:`DatasetFolder`)."""
    import pyarrow.parquet as pq

    write_manifest(manifest, folder)
    (folder / SPEC).write_text(yaml.safe_dump(spec, sort_keys=True, allow_unicode=True))
    for split, table in imagefolder_metadata(normalise_manifest(manifest)).items():
        target = safe_path(folder, f"{split}/{METADATA}")
        target.parent.mkdir(exist_ok=True)
        pq.write_table(table, target, compression="zstd")


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
        import pandas as pd

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
