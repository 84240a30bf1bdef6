"""Importers of official layouts on tiny synthetic trees, bad files included, and the import CLI."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from builders.images import read_rgb
from builders.importers import import_layout, list_layouts
from builders.manifest import Dataset, DatasetError
from tests.conftest import REPO, shared_path

import_cli = importlib.import_module("builders.import")


def img(path: Path, kind: str = "rgb", size=(40, 48), seed: int = 0) -> Path:
    """Write a small image of the given kind: rgb, gray, rgba, 16bit, broken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    if kind == "broken":
        path.write_bytes(b"this is not an image")
        return path
    arr = {"rgb": lambda: rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
           "gray": lambda: rng.integers(0, 256, (h, w), dtype=np.uint8),
           "rgba": lambda: rng.integers(0, 256, (h, w, 4), dtype=np.uint8),
           "16bit": lambda: rng.integers(0, 65536, (h, w, 3), dtype=np.uint16)}[kind]()
    assert cv2.imwrite(str(path), arr)
    return path


def run(layout, src, out, **kw):
    report = import_layout(layout, src, out, **kw)
    ds = Dataset.open(out)
    return report, ds, ds.manifest.set_index("sample_id")


def test_registry_lists_every_layout():
    assert {"cufed5", "wrsr", "sun80", "folder", "pairs"} <= set(list_layouts())


def test_cufed5_levels_links_and_bad_files(tmp_path):
    src = tmp_path / "CUFED5"
    for k in range(4):
        img(src / f"001_{k}.png", seed=k)
    img(src / "002_0.png", seed=9)
    img(src / "002_1.png", "gray")
    img(src / "002_2.png", "broken")
    img(src / "002_3.png", "rgba")
    img(src / "003_1.png")                     # reference without HR
    img(src / "004_0.png")                     # HR without references
    img(src / "foo.png")                       # not NNN_k
    (src / "readme.txt").write_text("hi")
    report, ds, m = run("cufed5", src, tmp_path / "out")
    assert sorted(m.index) == ["001_1", "001_2", "001_3", "002_1", "002_3"]
    assert m.loc["001_2", "level"] == 2 and m.loc["001_2", "group"] == "001"
    assert m.loc["001_1", "hr"] == "001_0.png" and m.loc["001_3", "ref"] == "001_3.png"
    assert m.loc["002_1", "ref"] == "002_1.png" and m.loc["002_1", "converted"] == "ref:grayscale"
    assert m.loc["002_3", "converted"] == "ref:alpha"
    assert report.skipped["unreadable"] == 1 and report.skipped["sample-dropped: ref unreadable"] == 1
    assert report.skipped["no-hr-in-group"] == 1 and report.skipped["no-references"] == 1
    assert report.skipped["unrecognised-name"] == 1 and report.skipped["not-an-image"] == 1
    assert dict(report.converted) == {"grayscale": 1, "alpha": 1}
    assert report.samples[("test", 1)] == 2 and report.samples[("test", 3)] == 2
    # hard link where possible, converted files are 8-bit RGB PNGs
    assert os.path.samefile(ds.path("001_0.png"), src / "001_0.png")
    gray, notes = read_rgb(ds.path("002_1.png"))
    assert notes == [] and gray.shape == (40, 48, 3) and (gray[..., 0] == gray[..., 2]).all()
    assert "001_0.png" in (tmp_path / "out" / "metadata.jsonl").read_text()
    text = report.format()
    assert "L1=2" in text and "unreadable=1" in text and "linked=" in text


def test_copy_instead_of_link_and_same_manifest_for_any_jobs(tmp_path):
    src = tmp_path / "c"
    for g in range(3):
        for k in range(3):
            img(src / f"{g:03d}_{k}.png", seed=10 * g + k)
    run("cufed5", src, tmp_path / "a", jobs=1)
    _, ds, _ = run("cufed5", src, tmp_path / "b", jobs=3, link=False)
    assert not os.path.samefile(ds.path("000_0.png"), src / "000_0.png")
    assert (tmp_path / "a" / "manifest.parquet").read_bytes() == (tmp_path / "b" / "manifest.parquet").read_bytes()


def test_wrsr_pairs_and_bad_inputs(tmp_path):
    src = tmp_path / "WR-SR"
    img(src / "input/001.png", seed=1)
    img(src / "ref/001_ref.png", seed=2)
    img(src / "input/002.png")                        # no reference
    img(src / "ref/003_ref.png")                      # reference without input
    img(src / "input/004.png", "16bit")
    img(src / "ref/004.png", seed=4)                  # accepted without the _ref suffix
    img(src / "input/005.png", size=(8, 8))           # too small
    img(src / "ref/005_ref.png")
    report, ds, m = run("wrsr", src, tmp_path / "out")
    assert sorted(m.index) == ["001", "004"]
    assert m.loc["001", "ref"] == "ref/001_ref.png" and m.loc["001", "level"] == 1
    assert m.loc["004", "converted"] == "hr:16-bit" and m.loc["004", "hr"] == "input/004.png"
    assert report.skipped["missing-reference"] == 1 and report.skipped["reference-without-input"] == 1
    assert report.skipped["too-small"] == 1 and report.skipped["sample-dropped: hr too-small"] == 1
    assert read_rgb(ds.path("input/004.png"))[0].dtype == np.uint8


def test_wrsr_without_subfolders_is_a_clear_error(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(FileNotFoundError, match="input"):
        import_layout("wrsr", tmp_path / "x", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def sun80_tree(root: Path) -> Path:
    gt, sm = root / "Sun_Hays_SR_groundtruth", root / "Sun_Hays_SR_scenematches"
    img(gt / "Sun_a.jpg", seed=1)
    img(gt / "Sun_b.png", seed=2)
    img(gt / "Sun_c.jpg", seed=3)                      # no matches
    for i in range(3):
        img(sm / "Sun_a" / f"m{i}.jpg", seed=10 + i)
    img(sm / "Sun_b.png" / "m0.jpg", seed=20)          # folder named after the file (MASA's loader)
    img(sm / "Sun_b.png" / "m1.jpg", "broken")
    img(sm / "Sun_z" / "m0.jpg")                       # matches without ground truth
    return root


def test_sun80_several_matches_per_image(tmp_path):
    report, ds, m = run("sun80", sun80_tree(tmp_path / "Sun80"), tmp_path / "out")
    assert sorted(m.index) == ["Sun_a/m0", "Sun_a/m1", "Sun_a/m2", "Sun_b/m0"]
    assert set(m["group"]) == {"Sun_a", "Sun_b"} and set(m["level"]) == {1}
    assert m.loc["Sun_a/m1", "ref"] == "Sun_Hays_SR_scenematches/Sun_a/m1.jpg"
    assert report.skipped["no-scene-matches"] == 1 and report.skipped["matches-without-groundtruth"] == 1
    assert report.skipped["unreadable"] == 1


def test_max_refs_is_a_seeded_draw_per_group(tmp_path):
    src = sun80_tree(tmp_path / "Sun80")
    picks = {}
    for seed in range(6):
        _, _, m = run("sun80", src, tmp_path / f"o{seed}", max_refs=1, seed=seed)
        assert m.groupby("group").size().to_dict() == {"Sun_a": 1, "Sun_b": 1}
        picks[seed] = m.loc[m["group"] == "Sun_a"].index[0]
    _, _, again = run("sun80", src, tmp_path / "again", max_refs=1, seed=0)
    assert again.loc[again["group"] == "Sun_a"].index[0] == picks[0]
    assert len(set(picks.values())) > 1


def test_folder_without_references(tmp_path):
    src = tmp_path / "Urban100"
    img(src / "img_001.png", seed=1)
    img(src / "sub" / "img_002.jpg", seed=2)
    img(src / "img_003.png", "rgba")
    img(src / "img_001.jpg")                           # same id as img_001.png
    img(src / "tiny.png", size=(4, 4))
    (src / "zz_copy.jpg").write_bytes((src / "sub" / "img_002.jpg").read_bytes())
    (src / ".hidden.png").write_bytes(b"")
    report, ds, m = run("folder", src, tmp_path / "out")
    assert sorted(m.index) == ["img_001", "img_003", "sub/img_002"]
    assert report.skipped["duplicate-image"] == 1 and report.skipped["sample-dropped: hr duplicate-image"] == 1
    assert set(m["level"]) == {0} and set(m["ref"]) == {""}
    assert m.loc["img_003", "hr"] == "img_003.png" and m.loc["sub/img_002", "hr"] == "sub/img_002.jpg"
    assert report.skipped["duplicate-name"] == 1 and report.skipped["too-small"] == 1
    assert ds.levels == [0]


def test_pair_list_with_header_and_bad_lines(tmp_path):
    root = tmp_path / "drefsr"
    for name in ("a", "b", "c"):
        img(root / "hr" / f"{name}.png", seed=ord(name))
        img(root / "ref" / f"{name}.png", seed=ord(name) + 50)
    outside = img(tmp_path / "elsewhere" / "x.png", seed=7)
    (root / "pairs.csv").write_text(
        "hr,ref,level  # header\n"
        "hr/a.png,ref/a.png,1\n"
        "hr/a.png,ref/b.png,2\n"
        "hr/a.png,ref/a.png,1\n"                       # duplicate
        "hr/b.png,ref/missing.png,1\n"                 # missing file
        "hr/c.png\n"                                   # malformed
        f"hr/c.png,{outside},3\n"
        "\n# comment line\n")
    report, ds, m = run("pairs", root, tmp_path / "out")
    assert sorted(m.index) == [f"hr/a~ref/a", "hr/a~ref/b", f"hr/c~{str(outside)[:-4]}"]
    assert m.loc["hr/a~ref/b", "level"] == 2 and m.loc["hr/a~ref/b", "group"] == "hr/a"
    ext = m.loc[f"hr/c~{str(outside)[:-4]}", "ref"]
    assert ext.startswith("external/") and ds.path(ext).is_file()
    assert report.skipped["duplicate-pair"] == 1 and report.skipped["missing-file"] == 1
    assert report.skipped["malformed-line (want 3 fields)"] == 1
    # the shared HR is written once and used by both rows
    assert m.loc["hr/a~ref/a", "hr"] == m.loc["hr/a~ref/b", "hr"] == "hr/a.png"


def test_pair_list_without_header_given_as_file(tmp_path):
    img(tmp_path / "h.png", seed=1)
    img(tmp_path / "r.png", seed=2)
    img(tmp_path / "my photos" / "h 2.png", seed=3)
    (tmp_path / "list.txt").write_text("h.png\tr.png\nmy photos/h 2.png, r.png\nh.png   r.png\n")
    report, _, m = run("pairs", tmp_path / "list.txt", tmp_path / "out")
    assert list(m.index) == ["h~r", "my photos/h 2~r"] and m.loc["h~r", "level"] == 1
    assert report.skipped["duplicate-pair"] == 1


def test_manifest_paths_escaping_the_root_are_refused(tmp_path):
    src = tmp_path / "f"
    img(src / "a.png")
    run("folder", src, tmp_path / "out")
    for bad in ("../f/a.png", "/etc/passwd", "sub/../../x.png"):
        df = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
        df.loc[0, "hr"] = bad
        df.to_parquet(tmp_path / "out" / "manifest.parquet")
        with pytest.raises(DatasetError):
            Dataset.open(tmp_path / "out")


def test_import_cli_prints_report_and_refuses_to_overwrite(tmp_path, capsys):
    src = tmp_path / "set"
    img(src / "a.png")
    img(src / "b.png", "broken")
    assert import_cli.main(["--layout", "folder", "--src", str(src), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "import:folder" in out and "L0=1" in out and "unreadable=1" in out
    assert import_cli.main(["--layout", "folder", "--src", str(src), "--out", str(tmp_path / "o")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert import_cli.main(["--layout", "folder", "--src", str(src), "--out", str(tmp_path / "o"),
                            "--overwrite", "--jobs", "2"]) == 0


def test_wrong_layout_writes_nothing_and_exits_2(tmp_path, capsys):
    src = tmp_path / "photos"
    for name in ("a.png", "b.png"):
        img(src / name)
    assert import_cli.main(["--layout", "cufed5", "--src", str(src), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no samples to write" in err and "unrecognised-name=2" in err and "layout" in err
    assert not (tmp_path / "o").exists()


def test_import_cli_runs_as_module(tmp_path):
    src = tmp_path / "w"
    img(src / "input/1.png", seed=1)
    img(src / "ref/1_ref.png", seed=2)
    res = subprocess.run([sys.executable, "-m", "builders.import", "--layout", "wrsr", "--src", str(src),
                          "--out", str(tmp_path / "o")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "test: 1 samples  L1=1" in res.stdout
    assert len(Dataset.open(tmp_path / "o").manifest) == 1


def test_shared_set5_imports_as_a_folder(tmp_path):
    src = shared_path("data", "sr_benchmarks", "Set5")
    report, ds, m = run("folder", src, tmp_path / "Set5", jobs=2)
    assert sorted(m.index) == ["baby", "bird", "butterfly", "head", "woman"]
    assert m.loc["baby", "hr_width"] == 512 and not report.skipped
    assert ds.path(m.loc["bird", "hr"]).read_bytes() == (src / "bird.png").read_bytes()
