"""Paper protocols (datsr, ssmtf, masa's stacked references), benchmark/papers.yaml and the paper suite."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark import run
from benchmark.evaluation import Evaluator, RunConfig, wrap_model
from benchmark.papers import load_papers
from benchmark.protocol import load_protocol
from benchmark.suite import jobs, load_suite, validate
from builders.images import read_rgb
from builders.manifest import Dataset
from builders.variants import get_variant
from tests.conftest import shared_path
from tests.harness_data import make_tiny_dataset


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------ presets on tiny inputs
@pytest.mark.parametrize("name, multiple", [("datsr", 32), ("ssmtf", 16), ("refsr-standard", 4)])
def test_mod_crop_presets_crop_hr_and_reference_top_left(name, multiple):
    p = load_protocol(name)
    hr, ref = _image(70, 101), _image(53, 66, seed=1)
    hr_eval, lr = p.make_pair(hr, 4)
    h, w = 70 // multiple * multiple, 101 // multiple * multiple
    assert hr_eval.shape == (h, w, 3) and lr.shape == (h // 4, w // 4, 3)
    np.testing.assert_array_equal(hr_eval, hr[:h, :w])
    r = p.prepare_ref(ref, 4)
    assert r.shape == (53 // multiple * multiple, 66 // multiple * multiple, 3)
    np.testing.assert_array_equal(r, ref[: r.shape[0], : r.shape[1]])


def test_ssmtf_preset_on_the_parity_fixture_sizes():
    """The fixture's 50x70 HR and 53x66 reference become 48x64 (LR 12x16), as its notes record."""
    p = load_protocol("ssmtf")
    hr_eval, lr = p.make_pair(_image(50, 70), 4)
    assert hr_eval.shape[:2] == (48, 64) and lr.shape[:2] == (12, 16)
    assert p.prepare_ref(_image(53, 66), 4).shape[:2] == (48, 64)


def test_masa_stacks_five_references_each_centred_on_512():
    p = load_protocol("masa")
    refs = [_image(500 - 10 * k, 333 + k, seed=k) for k in range(5)]
    stacked = p.prepare_ref(refs, 4)
    assert stacked.shape == (5 * 512, 512, 3)
    for k, r in enumerate(refs):  # tile k holds reference k at the centre (odd pixel bottom/right)
        top, left = (512 - r.shape[0]) // 2, (512 - r.shape[1]) // 2
        tile = stacked[512 * k: 512 * (k + 1)]
        np.testing.assert_array_equal(tile[top: top + r.shape[0], left: left + r.shape[1]], r)
        np.testing.assert_array_equal(tile[0, left: left + r.shape[1]], r[0])  # replicate padding
    with pytest.raises(ValueError, match="512x512 stacking canvas"):
        p.prepare_ref([_image(513, 20)] * 2, 4)
    with pytest.raises(ValueError, match="takes one reference"):
        load_protocol("datsr").prepare_ref(refs, 4)


def test_harness_gives_masa_the_group_references_in_level_order(tmp_path):
    """Clean variant under a stacking protocol: the sample's reference, then its group's others by
    level (level-1 sample: levels 1..5, as MASA's TestSet_multi); other variants: one reference."""
    data = make_tiny_dataset(tmp_path / "tiny", groups=1, levels=5)
    ds = Dataset.open(data)
    suite = validate({"name": "t", "models": ["bicubic"], "datasets": [str(data)], "variants": ["clean"]})
    ev = Evaluator(RunConfig(suite=suite, device=torch.device("cpu"), run_dir=tmp_path / "run"))
    lm = wrap_model(lambda lr, ref: lr, torch.device("cpu"), name="f")
    samples = ds.samples(split="test").sort_values("level")
    s = next(samples.itertuples(index=False))
    masa = load_protocol("masa")
    _, _, ref = ev.prepare(lm, ds, get_variant("clean"), s, masa)
    assert ref.shape == (5 * 512, 512, 3)
    for k, rel in enumerate(samples["ref"]):
        r = read_rgb(ds.path(rel))[0]
        top, left = (512 - r.shape[0]) // 2, (512 - r.shape[1]) // 2
        np.testing.assert_array_equal(ref[512 * k + top: 512 * k + top + r.shape[0], left: left + r.shape[1]], r)
    _, _, one = ev.prepare(lm, ds, get_variant("lr"), s, masa)
    assert one.shape[0] < 512  # a variant's own reference is not stacked
    _, _, std = ev.prepare(lm, ds, get_variant("clean"), s, load_protocol("refsr-standard"))
    assert std.shape == (48, 48, 3)


# ------------------------------------------------------------------ papers.yaml
def test_every_paper_entry_loads_and_the_paper_suite_covers_them():
    papers = load_papers()
    suite = load_suite("paper")
    assert set(suite.models) == set(papers)
    for m, e in papers.items():
        assert e.protocol_source and (e.published or e.published_note), m
    protocols = {j.model: j.protocol for j in jobs(suite) if j.protocol}
    assert protocols == {"ttsr.rec": "ttsr", "masa.rec": "masa", "datsr": "datsr", "ssmtf": "ssmtf"}


def test_published_figures_are_the_ones_printed_in_the_stored_papers():
    """Every figure whose source table is in ../shared/papers appears there as printed."""
    papers_dir = shared_path("papers")
    texts = {p.stem: p.read_text() for p in papers_dir.glob("*.txt")}
    which = {"FRFSR": "frfsr-feature-reuse-cufedr", "MASA-SR": "masa-sr_cvpr2021",
             "SRNTT (CVPR 2019)": "srntt-cufed5_cvpr2019", "DEF": "def-detail-enhancing-framework"}
    checked = 0
    for m, e in load_papers().items():
        for fig in e.published:
            v = dict(fig.values)
            pattern = rf"{v['psnr_y']:.2f}\s*/\s*0?{str(v['ssim_y'])[1:]}"
            for key, stem in which.items():
                if key in fig.source:
                    assert re.search(pattern, texts[stem]), (m, stem, pattern)
                    checked += 1
    assert checked >= 7


# ------------------------------------------------------------------ the suite
def test_paper_dry_run_prints_protocols_and_published_figures(capsys):
    assert run.main(["--suite", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for m, e in load_papers().items():
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"{m} ") and "protocol" in ln)
        assert f"protocol {e.protocol}:" in line
        if e.published:
            assert f"psnr_y {dict(e.published[0].values)['psnr_y']:g}" in out
    assert re.search(r"^\s+datsr\s+\S+\s+clean\s+datsr$", out, re.M)  # the datsr job under its own protocol
    assert re.search(r"^\s+datsr\s+\S+\s+clean\s+refsr-standard$", out, re.M)


def test_paper_suite_without_weights_shows_no_weights_never_a_number(tmp_path, monkeypatch, capsys):
    """The demo stands in for CUFED5; no model has weights: every reproduced cell is empty."""
    monkeypatch.setenv("REFSR_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path / "weights"))
    make_tiny_dataset(tmp_path / "data" / "demo")
    out_dir = tmp_path / "lb"
    assert run.main(["--suite", "paper", "--out", str(tmp_path / "run"), "--leaderboards", str(out_dir)]) == 0
    table = pd.read_csv(out_dir / "paper.csv")
    papers = load_papers()
    assert list(table["model"]) == list(load_suite("paper").models) and set(table["dataset"]) == {"demo"}
    reproduced = [c for c in table.columns if c.startswith(("paper_", "common_")) and c != "paper_protocol"]
    assert len(reproduced) == 5 and table[reproduced].isna().all().all()
    assert table["status"].str.startswith("no weights: ").all()
    for _, row in table.iterrows():
        fig = papers[row["model"]].figure("cufed5")
        if fig:
            assert row["published_psnr_y"] == dict(fig.values)["psnr_y"] and row["published_on"] == "cufed5"
        else:
            assert pd.isna(row["published_psnr_y"])
    md = (out_dir / "README.md").read_text()
    section = md.split("## Paper figures")[1].split("\n## ")[0]
    for line in section.splitlines()[4:]:
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[7:12] == [""] * 5 and cells[12].startswith("no weights"), line


def test_paper_table_sets_reproduced_beside_published():
    """Rows of a scored model: the paper-protocol and common-protocol means, and the gap to the
    published figure only on the dataset it was published on."""
    from benchmark.leaderboard import paper_table

    rows = []
    for proto, psnr in (("datsr", [28.0, 29.0]), ("refsr-standard", [27.0, 28.0])):
        for i, v in enumerate(psnr):
            for metric, value in (("psnr_y", v), ("ssim_y", 0.8)):
                rows.append({"model": "datsr", "dataset": "cufed5", "variant": "clean", "level": 1,
                             "image": f"{i}", "protocol": proto, "metric": metric, "value": value,
                             "status": "ok", "reason": ""})
    df = pd.DataFrame(rows)
    papers = load_papers()
    t = paper_table(df, papers, ["datsr", "ttsr.rec"], ["cufed5"], "refsr-standard",
                    unavailable={"ttsr.rec": "no weights: TTSR-rec.pt"})
    d = t.set_index("model").loc["datsr"]
    assert d["paper_psnr_y"] == 28.5 and d["common_psnr_y"] == 27.5 and d["status"] == ""
    assert d["paper_minus_published_psnr_y"] == pytest.approx(28.5 - 28.72)
    tt = t.set_index("model").loc["ttsr.rec"]
    assert pd.isna(tt["paper_psnr_y"]) and tt["status"] == "no weights: TTSR-rec.pt"
    stand_in = paper_table(df.assign(dataset="demo"), papers, ["datsr"], ["demo"], "refsr-standard",
                           stand_in={"cufed5": "demo"})
    assert stand_in.loc[0, "published_psnr_y"] == 28.72 and pd.isna(stand_in.loc[0, "paper_minus_published_psnr_y"])
