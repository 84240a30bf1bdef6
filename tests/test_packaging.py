"""The wheel works outside the repository: every module and every data file the code reads from its
package folders is inside it, scripts/ and tests/ are not, and the demo suite dry-runs from the
unpacked wheel in another folder (no network, nothing from the source tree)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from tests.conftest import REPO

PACKAGES = ("benchmark", "builders", "models", "core")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Build the wheel from a copy of the tracked sources (an in-tree build leaves build/ behind, and
    a stale build/lib would hide a file missing from the package list)."""
    pytest.importorskip("setuptools", minversion="68")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in (*PACKAGES, "datasets"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (path,) = (tmp / "dist").glob("refsr_bench-*.whl")
    return path


def test_wheel_holds_every_module_and_data_file_and_nothing_else(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {p.relative_to(REPO).as_posix() for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")
            if "__pycache__" not in p.parts}
    for sub in ("suites", "protocols", "recipes"):
        want |= {p.relative_to(REPO).as_posix() for p in (REPO / "benchmark" / sub).glob("*.yaml")}
    want |= {f"benchmark/dataset_specs/{p.name}" for p in (REPO / "datasets").glob("*.yaml")}
    assert not want - names, sorted(want - names)
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == set(PACKAGES), tops            # no tests/, scripts/, benchmarks/, datasets/ package
    meta = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert all(f"{name} = {target}" in text for name, target in scripts.items())


_CHECK = """
import importlib, json, sys
from pathlib import Path
from benchmark import dataset_registry, protocol, suite
from benchmark.training import recipe
from core import paths
scripts = json.loads(sys.argv[1])
for target in scripts.values():  # every console script resolves
    module, func = target.split(":")
    assert callable(getattr(importlib.import_module(module), func)), target
print(json.dumps({
    "benchmark": str(Path(suite.__file__).parent), "suites": suite.available_suites(),
    "protocols": protocol.list_protocols(), "recipes": recipe.list_recipes(),
    "datasets": sorted(dataset_registry.known()), "data": str(paths.data_dir()),
}))
from benchmark.run import main
sys.exit(main(["--suite", "demo", "--dry-run", "--models", "bicubic,texture_transfer"]))
"""


def test_demo_dry_run_from_the_unpacked_wheel_in_another_folder(wheel, tmp_path):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFSR_")}
    env.update(PYTHONPATH=str(site), HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    out = subprocess.run([sys.executable, "-c", _CHECK, json.dumps(scripts)], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    first, rest = out.stdout.split("\n", 1)
    info = json.loads(first)
    assert info["benchmark"] == str(site / "benchmark")          # the wheel's code, not the repository's
    assert info["suites"] == sorted(p.stem for p in (REPO / "benchmark" / "suites").glob("*.yaml"))
    assert info["protocols"] == sorted(p.stem for p in (REPO / "benchmark" / "protocols").glob("*.yaml"))
    assert info["recipes"] == sorted(p.name[:-5] for p in (REPO / "benchmark" / "recipes").glob("*.yaml"))
    assert "demo" in info["datasets"] and len(info["datasets"]) == len(list((REPO / "datasets").glob("*.yaml")))
    assert info["data"] == str(tmp_path / "home" / ".cache" / "refsr-bench" / "data")   # user cache, not site
    assert "suite demo" in rest and "texture_transfer" in rest
    assert not (site / "runs").exists() and not list(elsewhere.iterdir())   # a dry run writes nothing
