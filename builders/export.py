"""CLI: a copy of a dataset in HuggingFace ``datasets``' own format, ready for ``push_to_hub``.

    python -m builders.export --to-hub-format SRC DST [--max-shard-size 500MB] [--overwrite]

SRC is any dataset the suite wrote (recipe, import, variant). It is read the way a user would read
it, ``load_dataset("imagefolder", data_dir=SRC)`` through its ``<split>/metadata.parquet`` (images
``hr``, ``ref``, ``lr`` and every manifest column), checked against the manifest, and written as
``data/<split>-NNNNN-of-NNNNN.parquet`` shards with the image bytes embedded (Image features kept
in the schema), beside a ``README.md`` dataset card. ``load_dataset("parquet", data_dir=DST)`` or
``load_dataset(DST)`` then gives the same splits, and ``.push_to_hub(repo)`` uploads them; nothing
is uploaded here. The copy is written atomically, like every dataset.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from builders._cli import report_or_error
from builders.manifest import Dataset, DatasetError
from builders.writer import IMAGE_COLUMNS, DatasetFolder, check_target

_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9}


def parse_size(text: str) -> int:
    """``'500MB'`` -> 500_000_000 (KB, MB, GB or plain bytes)."""
    t = text.strip().upper()
    for unit, factor in _UNITS.items():
        if t.endswith(unit):
            return int(float(t[: -len(unit)]) * factor)
    return int(t)


@dataclass
class ExportReport:
    src: str
    out: str
    rows: dict[str, int] = field(default_factory=dict)     # split -> rows
    shards: dict[str, int] = field(default_factory=dict)   # split -> parquet files
    columns: list[str] = field(default_factory=list)

    def format(self) -> str:
        splits = ", ".join(f"{s}: {n} rows in {self.shards[s]} shard(s)" for s, n in self.rows.items())
        return (f"exported {self.src} -> {self.out}\n  splits: {splits}\n  columns: {', '.join(self.columns)}\n"
                f"  load: datasets.load_dataset('parquet', data_dir='{self.out}'); upload: .push_to_hub(repo)")


def load_imagefolder(src: str | Path, cache_dir: str | Path):
    """The dataset at ``src`` as ``imagefolder`` reads it (a ``DatasetDict`` by split)."""
    import datasets

    return datasets.load_dataset("imagefolder", data_dir=str(src), cache_dir=str(cache_dir))


def _card(ds: Dataset, splits: list[str]) -> str:
    spec = {k: ds.spec[k] for k in ("name", "kind", "created_by", "version", "seed", "source", "base") if k in ds.spec}
    header = {"configs": [{"config_name": "default",
                           "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}]}
    return (f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n# {ds.name}\n\n"
            "Reference-based super-resolution data written by refsr-bench. One row per sample: `hr`, `ref` "
            "(its reference; none at level 0) and `lr` images, the reference `level` (1 = most similar), "
            "`group` (test: the rows of one HR, one per reference, so a multi-reference group is its rows; "
            "train: the album) and the builder's scores, crop boxes and provenance columns.\n\n"
            f"What made it:\n\n```yaml\n{yaml.safe_dump(spec, sort_keys=True)}```\n")


def export_hub(src: str | Path, dst: str | Path, *, max_shard_size: int = 500 * 10**6,
               overwrite: bool = False) -> ExportReport:
    """Write the ``datasets``-native copy of ``src`` to ``dst`` (see the module docstring)."""
    from datasets.table import embed_table_storage

    ds = Dataset.open(src)
    if ds.manifest.empty:
        raise DatasetError(f"{src} has no samples: nothing to export")
    check_target(dst, overwrite)
    report = ExportReport(str(src), str(dst))
    with DatasetFolder(dst, overwrite=overwrite) as tmp:
        dd = load_imagefolder(ds.root, tmp / ".hf-cache")
        want = ds.manifest["split"].value_counts().to_dict()
        got = {s: d.num_rows for s, d in dd.items()}
        if got != want:
            raise DatasetError(f"imagefolder reads {got} rows by split from {src}, its manifest has {want}")
        for split, d in dd.items():
            missing = [c for c in IMAGE_COLUMNS if c not in d.column_names]
            if missing:
                raise DatasetError(f"imagefolder reads no {missing} column from {src}")
            nbytes = sum(ds.path(p).stat().st_size for c in IMAGE_COLUMNS if c in ds.manifest
                         for p in ds.samples(split)[c] if p)
            n = max(1, min(d.num_rows, nbytes // max_shard_size + 1))
            (tmp / "data").mkdir(exist_ok=True)
            for i in range(n):
                shard = d.shard(num_shards=n, index=i, contiguous=True)
                shard = shard.with_format("arrow").map(embed_table_storage, batched=True, keep_in_memory=True)
                shard.to_parquet(str(tmp / "data" / f"{split}-{i:05d}-of-{n:05d}.parquet"))
            report.rows[split], report.shards[split] = d.num_rows, n
            report.columns = d.column_names
        shutil.rmtree(tmp / ".hf-cache")
        (tmp / "README.md").write_text(_card(ds, list(dd)))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m builders.export", description=__doc__.split("\n")[0])
    ap.add_argument("--to-hub-format", nargs=2, metavar=("SRC", "DST"), required=True,
                    help="the dataset folder, and the folder to write the parquet copy to")
    ap.add_argument("--max-shard-size", default="500MB", help="image bytes per parquet shard (default 500MB)")
    ap.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    args = ap.parse_args(argv)
    src, dst = args.to_hub_format
    return report_or_error(lambda: export_hub(src, dst, max_shard_size=parse_size(args.max_shard_size),
                                              overwrite=args.overwrite))


if __name__ == "__main__":
    sys.exit(main())
