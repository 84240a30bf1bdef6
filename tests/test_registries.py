"""Every registered entry of every registry is built and exercised here (timm-style): a new model,
metric, variant, importer or recipe is tested by being registered."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.metrics import create_metric, list_metrics, metric_info
from builders.importers import LAYOUTS
from builders.manifest import Dataset, DatasetError
from builders.recipes import RECIPES
from builders.variants import VARIANTS, VariantInput, get_variant, variant_rng
from core.registry import Registry, UnknownName
from models import MODELS, create_model, get_spec, list_models
from models.checkpoint import describe_mismatch

KEYS = Path(__file__).parent / "fixtures" / "keys"


# -- the registry itself -------------------------------------------------------------------------
def test_registry_verbs_duplicates_aliases_and_suggestions():
    reg = Registry("thing")
    reg.register("alpha", colour="red")(dict)
    reg.alias("old_alpha", "alpha")
    assert reg.list() == ["alpha"] and reg.list("a*") == ["alpha"] and reg.list("b*") == []
    assert reg.get("old_alpha") is dict and reg.info("alpha") == {"colour": "red"}
    assert reg.create("alpha", x=1) == {"x": 1}
    with pytest.raises(UnknownName, match="did you mean alpha"):
        reg.get("alpah")
    reg.add("alpha", dict)  # the same module registering again (a re-import) is fine

    class Other:  # noqa: D401 - a different module's object under the same name
        __module__ = "elsewhere"

    with pytest.raises(ValueError, match="registered twice"):
        reg.add("alpha", Other)


def test_every_registry_skips_underscore_modules():
    for reg in (MODELS, VARIANTS, LAYOUTS, RECIPES):
        assert all(not e.module.rsplit(".", 1)[-1].startswith("_") for e in reg)


# -- models --------------------------------------------------------------------------------------
def _tiny_inputs(spec):
    def up(n, m):
        return -(-n // m) * m

    h, w = up(16, spec.lr_multiple), up(24, spec.lr_multiple)
    return torch.rand(1, 3, h, w), torch.rand(1, 3, up(4 * h, spec.ref_multiple), up(4 * w, spec.ref_multiple))


@pytest.mark.parametrize("name", list_models())
def test_model_builds_runs_tiny_and_reads_its_official_keys(name):
    spec = get_spec(name)
    torch.manual_seed(0)
    model = create_model(name, **spec.test_kwargs).eval()
    assert model.spec is spec
    lr, ref = _tiny_inputs(spec)
    with torch.no_grad():
        out = model(lr, ref)
    assert out.shape == (1, 3, spec.scale * lr.shape[-2], spec.scale * lr.shape[-1])
    assert torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    if not spec.tags:
        return
    # the official files' keys and shapes (fixture made from the official code) fit after the filter
    fixture = json.loads((KEYS / f"{name}.json").read_text())
    roles = fixture.get("roles") or {"net": fixture}
    with torch.device("meta"):
        full = create_model(name)
    modules = full.checkpoint_modules()
    published = {c.role for t in spec.tags for c in t.files if c.url}
    assert published <= set(roles) <= {c.role for t in spec.tags for c in t.files} == set(modules)
    for role, entry in roles.items():
        if "keys" not in entry:  # TensorFlow variable lists (SRNTT): checked in its own test
            continue
        official = {k: torch.empty(shape, device="meta") for k, shape in entry["keys"].items()}
        ours = modules[role].state_dict()
        assert describe_mismatch(ours, full.checkpoint_filter(role, official)) == "", role
        if "params" in entry:
            assert sum(p.numel() for p in modules[role].parameters()) == entry["params"], role


def test_tags_and_old_names():
    assert "ttsr.rec" in list_models(tags=True) and "masa.rec" in list_models("masa*", tags=True)
    assert get_spec("ttsr_rec") is get_spec("ttsr.rec") is get_spec("ttsr")
    with pytest.raises(KeyError, match="no weight tag"):
        create_model("ttsr.nope")


# -- metrics -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list_metrics())
def test_metric_builds_declares_its_facts_and_scores(name):
    info = metric_info(name)
    assert info.label and info.summary and info.decimals >= 0 and info.arrow in "↑↓"
    metric = create_metric(name, device="cpu")
    assert metric.higher_is_better == info.higher_is_better and metric.needs_reference == info.needs_reference
    ok, reason = metric.available()
    if not ok:
        assert reason.startswith("unavailable (")
        return
    g = torch.Generator().manual_seed(0)
    channels = 1 if metric.space == "y" else 3
    hr = torch.rand(1, channels, 48, 48, generator=g) * 255
    sr = (hr + torch.randn(1, channels, 48, 48, generator=g) * 8).clamp(0, 255)
    noisier = (hr + torch.randn(1, channels, 48, 48, generator=g) * 40).clamp(0, 255)
    a, b = (metric(x, hr if info.needs_reference else None) for x in (sr, noisier))
    assert a.shape == (1,) and math.isfinite(float(a[0]))
    if info.needs_reference:  # the direction the registration declares is the one the metric has
        assert (a > b).item() == info.higher_is_better


# -- variants ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", VARIANTS.list())
def test_variant_builds_from_its_example_and_is_deterministic(name, tmp_path):
    from builders.images import write_png

    pool = tmp_path / "pool"
    for k in range(3):
        write_png(pool / f"p{k}.png", np.random.default_rng(k).integers(0, 256, (40, 52, 3), dtype=np.uint8))
    v = get_variant(VARIANTS.info(name)["example"].format(pool=pool))
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    inp = VariantInput("s0", 1, hr, ref=rng.integers(0, 256, (44, 60, 3), dtype=np.uint8), scale=4,
                       refs=(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8),))
    out1, rec1 = v.apply(inp, variant_rng(0, "s0", v.name))
    out2, rec2 = v.apply(inp, variant_rng(0, "s0", v.name))
    assert out1.dtype == np.uint8 and out1.ndim == 3 and np.array_equal(out1, out2) and rec1 == rec2
    json.dumps({**v.params, **rec1})


# -- importers and recipes -----------------------------------------------------------------------
@pytest.mark.parametrize("name", LAYOUTS.list())
def test_importer_on_an_empty_folder_plans_nothing_or_says_why(name, tmp_path):
    try:
        scan = LAYOUTS.get(name)(tmp_path)
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        assert str(exc)
        return
    assert scan.samples == []


@pytest.mark.parametrize("name", RECIPES.list())
def test_recipe_builds_a_dataset_from_tiny_albums(name, tmp_path):
    from tests.builders_synth import make_album

    make_album(tmp_path / "albums" / "a0", seed=5)
    config = RECIPES.info(name)["config"]()
    build = RECIPES.get(name)
    report = build(tmp_path / "albums", tmp_path / "out", config, seed=0, jobs=1)
    ds = Dataset.open(tmp_path / "out")
    assert len(ds.manifest) > 0 and ds.spec["report"] == report.to_dict()
