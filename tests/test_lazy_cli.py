"""Help and listings import no torch: registries answer from their generated index, which must match
the real registrations (``python -m core.registry ...`` rewrites it)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.metrics import METRICS
from builders.importers import LAYOUTS
from builders.recipes import RECIPES
from builders.variants import VARIANTS
from models import MODELS, ModelSpec, get_spec, list_models

ROOT = Path(__file__).resolve().parents[1]
INDEXED = {"models:MODELS": MODELS, "benchmark.metrics:METRICS": METRICS, "builders.variants:VARIANTS": VARIANTS,
           "builders.importers:LAYOUTS": LAYOUTS, "builders.recipes:RECIPES": RECIPES}
HEAVY = ("torch", "torchvision", "pandas")


@pytest.mark.parametrize("where", sorted(INDEXED))
def test_index_matches_the_registrations(where):
    import ast

    registry = INDEXED[where]
    stored = ast.literal_eval(registry.index_path().read_text())
    assert stored == registry.build_index(), (
        f"{registry.index_path()} is out of date: run python -m core.registry {' '.join(sorted(INDEXED))}")


@pytest.mark.parametrize("name", list_models())
def test_indexed_spec_equals_the_model_files_spec(name):
    spec = MODELS.info(name)["spec"]
    assert ModelSpec.from_dict(spec.as_dict()) == spec == get_spec(name)


def _imported_after(module: str, *args: str) -> tuple[list[str], str]:
    code = textwrap.dedent(f"""
        import json, runpy, sys
        sys.argv = [{module!r}, *{list(args)!r}]
        try:
            runpy.run_module({module!r}, run_name="__main__")
        except SystemExit:
            pass
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return json.loads(done.stderr.strip().splitlines()[-1]), done.stdout


@pytest.mark.parametrize("module,args", [
    ("benchmark.run", ["--help"]), ("benchmark.run", ["--list-models"]), ("benchmark.run", ["--list-datasets"]),
    ("benchmark.run", ["--list-suites"]), ("models.pretrained", ["--help"]), ("builders.import", ["--help"]),
    ("builders.build", ["--help"]), ("builders.variant", ["--help"])])
def test_help_and_listings_import_no_torch(module, args):
    heavy, out = _imported_after(module, *args)
    assert heavy == [], f"{module} {' '.join(args)} imported {heavy}"
    if args == ["--help"] and module == "benchmark.run":  # the help still names every model tag and metric
        assert all(t in out for t in list_models(tags=True)) and all(m in out for m in METRICS.list())
    if args == ["--list-models"]:
        assert "ttsr.rec" in out and "[net]" in out and ("missing" in out or "found" in out)


def test_lazy_registry_imports_one_module_and_falls_back_when_a_file_is_new(tmp_path):
    pkg = tmp_path / "lazypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from core.registry import Registry\n"
                                     "REG = Registry('thing', 'lazypkg', brief=lambda e: dict(e.info))\n")
    for name in ("alpha", "beta"):
        (pkg / f"{name}.py").write_text(f"from lazypkg import REG\n@REG.register({name!r}, colour={name!r})\n"
                                        f"def make():\n    return {name!r}\n")
    env_code = f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {str(ROOT)!r}]\n"
    subprocess.run([sys.executable, "-c", env_code + "import sys; from core.registry import main; "
                    "main(['lazypkg:REG'])"], check=True, capture_output=True, timeout=60)
    probe = env_code + textwrap.dedent("""
        import sys
        from lazypkg import REG
        loaded = lambda: sorted(m for m in sys.modules if m.startswith("lazypkg."))
        out = [REG.list(), loaded(), REG.brief("beta"), "alpha" in REG, loaded(), REG.create("beta"), loaded()]
        print(repr(out))
    """)

    def run() -> list:
        import ast

        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return ast.literal_eval(done.stdout.strip())

    assert run() == [["alpha", "beta"], [], {"colour": "beta"}, True, [], "beta", ["lazypkg.beta"]]
    (pkg / "gamma.py").write_text("from lazypkg import REG\n@REG.register('gamma', colour='x')\n"
                                  "def make():\n    return 'gamma'\n")
    names, loaded = run()[:2]  # the index no longer lists the package's modules: everything is discovered
    assert names == ["alpha", "beta", "gamma"] and loaded == ["lazypkg.alpha", "lazypkg.beta", "lazypkg.gamma"]
