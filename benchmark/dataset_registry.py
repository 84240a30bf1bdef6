"""Named datasets: ``datasets/<name>.yaml`` says where a dataset lives under ``$REFSR_DATA``.

A suite names datasets; a name resolves to a folder written by ``builders``. A dataset whose spec
says ``build: demo-corpus`` is built on first use from photos shipped in the scikit-image wheel;
any other missing dataset is reported with the command that imports it. A path to a dataset folder
works wherever a name does.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from builders.manifest import Dataset, DatasetError
from core.paths import data_dir

REPO = Path(__file__).resolve().parents[1]
SPEC_DIR = REPO / "datasets"
DEMO_POOL = "demo_pool"


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    path: Path
    description: str = ""
    build: str = ""
    how_to_get: str = ""
    seed: int = 0

    @property
    def present(self) -> bool:
        return (self.path / "manifest.parquet").is_file()


def known() -> dict[str, DatasetEntry]:
    """Every dataset declared in ``datasets/*.yaml``, by name."""
    out = {}
    for f in sorted(SPEC_DIR.glob("*.yaml")):
        spec = yaml.safe_load(f.read_text()) or {}
        name = spec.get("name", f.stem)
        out[name] = DatasetEntry(name=name, path=data_dir() / spec.get("path", name),
                                 description=str(spec.get("description", "")).strip(),
                                 build=spec.get("build", ""), how_to_get=str(spec.get("how_to_get", "")).strip(),
                                 seed=int(spec.get("seed", 0)))
    return out


def resolve(name_or_path: str) -> DatasetEntry:
    """A declared name, or a folder path holding a manifest."""
    entries = known()
    if name_or_path in entries:
        return entries[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return DatasetEntry(name=path.name, path=path)
    raise DatasetError(f"unknown dataset {name_or_path!r}: not one of {sorted(entries)} and not a folder")


def present() -> list[str]:
    """Names of declared datasets whose folder exists (the demo counts: it can always be built)."""
    return [n for n, e in known().items() if e.present or e.build]


def open_dataset(entry: DatasetEntry, jobs: int = 1) -> Dataset:
    """Open a dataset, building the demo on first use; a missing import is a clear error."""
    if not entry.present:
        if entry.build == "demo-corpus":
            build_demo(entry, jobs=jobs)
        else:
            hint = f"\n  to get it: {entry.how_to_get}" if entry.how_to_get else ""
            raise DatasetError(f"dataset {entry.name!r} is not present at {entry.path}{hint}")
    return Dataset.open(entry.path)


def build_demo(entry: DatasetEntry, jobs: int = 1) -> None:
    """Make the demo albums and pool from scikit-image photos and run the real CUFED5-style builder."""
    from builders.demo_corpus import make_albums, make_pool
    from builders.recipes import cufed5

    albums = data_dir() / "demo_albums"
    print(f"building the demo dataset: albums in {albums}, dataset in {entry.path}")
    make_albums(albums, seed=entry.seed)
    make_pool(data_dir() / DEMO_POOL)
    cufed5.build(albums, entry.path, seed=entry.seed, jobs=jobs)


def resolve_pool(arg: str) -> Path:
    """An irrelevant-reference pool: a folder path, or a name under ``$REFSR_DATA`` (demo_pool is made on demand)."""
    path = Path(arg).expanduser()
    if path.is_dir():
        return path
    path = data_dir() / arg
    if arg == DEMO_POOL and not path.is_dir():
        from builders.demo_corpus import make_pool

        make_pool(path)
    if not path.is_dir():
        raise DatasetError(f"irrelevant-reference pool {arg!r} not found (a folder path or a folder under {data_dir()})")
    return path
