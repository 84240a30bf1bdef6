"""Validation before work: output folders, empty or wrong sources and bad numbers are one clear error,
with exit code 2, before any image is read; a missing file inside a dataset costs one sample."""
from __future__ import annotations

import importlib

import pytest

from benchmark import run
from builders import build, variant
from tests.builders_synth import make_albums
from tests.harness_data import make_tiny_dataset

import_main = importlib.import_module("builders.import").main  # "import" is a keyword


def _err(capsys) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return err


@pytest.fixture
def no_scan(monkeypatch):
    """Any SIFT scan fails the test: every refusal here must come before it."""
    def scan(*a, **k):
        raise AssertionError("the albums were scanned before the refusal")

    monkeypatch.setattr("builders.recipes._common.scan", scan)


def test_build_output_and_inputs_are_checked_before_the_sift_scan(tmp_path, capsys, monkeypatch, no_scan):
    albums = make_albums(tmp_path / "albums", n=1)
    (tmp_path / "file.txt").write_text("x")
    base = ["--recipe", "cufed5", "--albums", str(albums), "--quiet"]
    for out, message in ((tmp_path / "file.txt" / "ds", "file.txt is a file, not a folder"),
                         ("/sys/refsr-ds", "/sys is not writable")):
        assert build.main(base + ["--out", str(out)]) == 2 and message in _err(capsys)
    monkeypatch.setenv("REFSR_MIN_FREE_MB", str(10 ** 12))
    assert build.main(base + ["--out", str(tmp_path / "ds")]) == 2
    err = _err(capsys)
    assert "MiB free on" in err and "$REFSR_MIN_FREE_MB" in err
    monkeypatch.delenv("REFSR_MIN_FREE_MB")
    (tmp_path / "empty").mkdir()
    for argv, message in ((["--albums", str(albums), "--jobs", "0"], "--jobs 0: must be >= 1"),
                          (["--albums", str(albums), "--scale", "0"], "must be"),
                          (["--albums", str(albums), "--crop-size", "0"], "must be"),
                          (["--albums", str(albums), "--ratio", "2"], "must be"),
                          (["--albums", str(albums), "--test-fraction", "5"], "must be")):
        assert build.main(["--recipe", "cufed5", "--out", str(tmp_path / "o"), "--quiet", *argv]) == 2, argv
        assert message in _err(capsys), argv
    monkeypatch.undo()  # the album folder itself is checked by the scan, before it reads an image
    for albums, message in ((tmp_path / "file.txt", "is a file"), (tmp_path / "empty", "no images in")):
        assert build.main(["--recipe", "cufed5", "--out", str(tmp_path / "o"), "--albums", str(albums)]) == 2
        assert message in _err(capsys)
    assert not (tmp_path / "o").exists()


def test_import_refuses_empty_and_file_sources_and_unwritable_outputs(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a.png").write_bytes(b"x")
    for argv, message in ((["--layout", "folder", "--src", str(tmp_path / "empty")], "no samples to write"),
                          (["--layout", "cufed5", "--src", str(tmp_path / "empty")], "no samples to write"),
                          (["--layout", "folder", "--src", str(tmp_path / "a.png")], "is a file; the folder layout"),
                          (["--layout", "folder", "--src", str(tmp_path / "empty"), "--jobs", "0"], "--jobs 0"),
                          (["--layout", "folder", "--src", str(tmp_path / "empty"), "--out", "/sys/refsr-ds"],
                           "/sys is not writable")):
        if "--out" not in argv:
            argv = argv + ["--out", str(tmp_path / "o")]
        assert import_main(argv) == 2, argv
        assert message in _err(capsys), argv
    assert not (tmp_path / "o").exists()


def test_a_missing_hr_in_a_variant_is_counted_not_an_abort(tmp_path, capsys):
    ds = make_tiny_dataset(tmp_path / "ds", groups=3, levels=2)
    (ds / "test" / "001_0.png").unlink()  # group 001's HR, shared by its two samples
    assert variant.main(["--dataset", str(ds), "--variant", "lr", "--out", str(tmp_path / "v")]) == 0
    printed = capsys.readouterr().out
    assert "input-missing-file=2" in printed and "test: 4 samples" in printed
    assert variant.main(["--dataset", str(ds), "--variant", "lr", "--out", str(tmp_path / "w"), "--scale", "0"]) == 2
    assert "--scale 0: must be >= 1" in _err(capsys)


def test_run_output_folder_is_checked_before_work(tmp_path, capsys):
    ds = make_tiny_dataset(tmp_path / "ds", groups=1, levels=1)
    (tmp_path / "f").write_text("x")
    assert run.main(["--models", "bicubic", "--datasets", str(ds), "--out", str(tmp_path / "f" / "r")]) == 2
    assert "--out: cannot write" in _err(capsys)
    assert run.main(["--models", "bicubic", "--datasets", str(ds), "--out", "/sys/refsr-run"]) == 2
    assert "/sys is not writable" in _err(capsys)


def test_a_zero_byte_file_never_hides_the_real_image_of_the_same_name(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from builders.manifest import Dataset

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(src / "photo.png")
    (src / "photo.jpg").write_bytes(b"")  # sorts first: it used to take the name and drop the PNG
    assert import_main(["--layout", "folder", "--src", str(src), "--out", str(tmp_path / "o")]) == 0
    assert "empty-file=1" in capsys.readouterr().out
    assert list(Dataset.open(tmp_path / "o").manifest["hr"]) == ["test/photo.png"]
