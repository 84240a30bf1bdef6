"""Named datasets: ``datasets/<name>.yaml`` says where a dataset lives under ``$REFSR_DATA``.

A suite names datasets; a name resolves to a folder written by ``builders``. A dataset whose spec
says ``build: demo-corpus`` is built on first use by its ``recipe`` from photos shipped in the
scikit-image wheel; any other missing dataset is reported with where to get it (``how_to_get``)
and the exact ``builders.import`` command for its ``layout``. A path to a dataset folder works
wherever a name does. Keys are checked when the files are read: an unknown key, layout or recipe
is an error naming the file and the closest known spelling.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path


from builders.importers import LAYOUTS
from builders.manifest import Dataset, DatasetError
from builders.recipes import RECIPES
from core.paths import data_dir
from core.yaml_io import load_yaml

_PACKAGED = Path(__file__).resolve().parent / "dataset_specs"  # where a wheel carries datasets/*.yaml
SPEC_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[1] / "datasets"
DEMO_POOL = "demo_pool"


BUILDS = ("demo-corpus",)


@dataclass(frozen=True)
class DatasetEntry:
    """One ``datasets/<name>.yaml``: its keys are these fields (``path`` relative to ``$REFSR_DATA``)."""

    name: str
    path: Path
    description: str = ""
    build: str = ""          # demo-corpus: made on first use (with ``recipe`` and ``seed``)
    recipe: str = ""         # the builders recipe that makes it
    layout: str = ""         # the builders importer layout that imports it
    how_to_get: str = ""     # where to download the source
    seed: int = 0

    @property
    def present(self) -> bool:
        return (self.path / "manifest.parquet").is_file()

    def import_command(self) -> str:
        """The exact command that imports this dataset to where the suite looks for it."""
        return (f"python -m builders.import --layout {self.layout} --src <{self.name} folder> --out {self.path}"
                if self.layout else "")


def _close(word: str, known, source: Path, what: str) -> DatasetError:
    close = difflib.get_close_matches(word, list(known), n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return DatasetError(f"{source}: unknown {what} {word!r}{hint} (known: {', '.join(sorted(known))})")


def read_entry(f: Path) -> DatasetEntry:
    """A dataset spec file, checked: known keys only, a registered layout/recipe, a known build."""
    spec = load_yaml(f.read_text()) or {}
    if not isinstance(spec, dict):
        raise DatasetError(f"{f}: expected a mapping of keys, got {type(spec).__name__}")
    keys = [fl.name for fl in dataclasses.fields(DatasetEntry)]
    for key in spec:
        if key not in keys:
            raise _close(str(key), keys, f, "key")
    if spec.get("layout") and spec["layout"] not in LAYOUTS:
        raise _close(spec["layout"], LAYOUTS.list(), f, "layout")
    if spec.get("recipe") and spec["recipe"] not in RECIPES:
        raise _close(spec["recipe"], RECIPES.list(), f, "recipe")
    if spec.get("build") and spec["build"] not in BUILDS:
        raise _close(spec["build"], BUILDS, f, "build")
    if spec.get("build") and not spec.get("recipe"):
        raise DatasetError(f"{f}: build: {spec['build']} needs the recipe that builds it (recipe:)")
    name = spec.get("name", f.stem)
    return DatasetEntry(name=name, path=data_dir() / spec.get("path", name),
                        description=str(spec.get("description", "")).strip(), build=spec.get("build", ""),
                        recipe=spec.get("recipe", ""), layout=spec.get("layout", ""),
                        how_to_get=str(spec.get("how_to_get", "")).strip(), seed=int(spec.get("seed", 0)))


def known() -> dict[str, DatasetEntry]:
    """Every dataset declared in ``datasets/*.yaml``, by name."""
    return {e.name: e for e in map(read_entry, sorted(SPEC_DIR.glob("*.yaml")))}


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


def absence(entry: DatasetEntry) -> str:
    """Why a declared dataset cannot be opened and how to get it."""
    steps = [entry.how_to_get + (", then" if entry.layout else "")] if entry.how_to_get else []
    hint = "".join(f"\n  {line}" for line in (*steps, entry.import_command()) if line)
    return f"dataset {entry.name!r} is not present at {entry.path}{hint}"


def open_dataset(entry: DatasetEntry, jobs: int = 1) -> Dataset:
    """Open a dataset, building the demo on first use; a missing import is a clear error."""
    if not entry.present:
        if entry.build == "demo-corpus":
            build_demo(entry, jobs=jobs)
        else:
            raise DatasetError(absence(entry))
    return Dataset.open(entry.path)


def build_demo(entry: DatasetEntry, jobs: int = 1) -> None:
    """Make the demo albums and pool from scikit-image photos and run the entry's recipe on them."""
    from builders.demo_corpus import make_albums, make_pool

    albums = data_dir() / "demo_albums"
    print(f"building the demo dataset: albums in {albums}, dataset in {entry.path}")
    make_albums(albums, seed=entry.seed)
    make_pool(data_dir() / DEMO_POOL)
    RECIPES.get(entry.recipe)(albums, entry.path, seed=entry.seed, jobs=jobs)


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
