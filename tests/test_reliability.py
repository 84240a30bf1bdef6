"""Bounded cost per input: references over a model's limit are resized (noted) or refused, inputs over
the memory estimate are failed rows before allocating, and one bad file of each kind (a 74-byte PNG
header claiming 100000x100000, a zero-byte checkpoint, a 4000x3000 reference) costs only itself."""
from __future__ import annotations

import importlib
import struct
import zlib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmark import run
from benchmark.evaluation import InputTooLarge, fit_reference
from models import MemoryCost, ModelSpec, get_spec, list_models
from tests.harness_data import make_tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def bomb_png(path) -> None:
    """A valid 74-byte PNG whose header claims 100000x100000 RGB pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))  # the start of row 0
    assert path.stat().st_size == 74


def test_every_model_declares_a_reference_limit_and_a_memory_model():
    for name in list_models():
        spec = get_spec(name)
        if spec.uses_ref:
            assert spec.max_ref_side and spec.max_ref_side >= 500, name  # a CUFED5 reference is never resized
        assert isinstance(spec.memory, MemoryCost), name
        assert spec.memory.estimate((93, 125), (500, 500)) < 8 * 2 ** 30, name


def test_fit_reference_resizes_refuses_and_guards_memory():
    spec = ModelSpec(name="m", max_ref_side=100, memory=MemoryCost(base_mib=1, per_ref_px=1000))
    lr, ref = np.zeros((8, 8, 3), np.uint8), np.full((150, 300, 3), 7, np.uint8)
    out, note = fit_reference(spec, lr, ref, max_memory_gib=1)
    assert out.shape == (50, 100, 3) and (out == 7).all()
    assert note == "reference resized from 300x150 to 100x50 (m max_ref_side 100)"
    assert fit_reference(spec, lr, ref[:90, :90], max_memory_gib=1) == (pytest.approx(ref[:90, :90]), "")
    with pytest.raises(InputTooLarge, match="over m's max_ref_side 100"):
        fit_reference(replace(spec, oversize_ref="fail"), lr, ref, max_memory_gib=1)
    with pytest.raises(InputTooLarge, match=r"m would need ~0\.0 GiB for LR 8x8 / Ref 100x50, limit 0\.0 GiB; "
                                            r"set --max-memory"):
        fit_reference(spec, lr, ref, max_memory_gib=1e-3)
    with pytest.raises(ValueError, match="oversize_ref must be"):
        ModelSpec(name="x", oversize_ref="tile")


def test_the_memory_guard_is_a_failed_row_and_the_run_goes_on(tmp_path, capsys):
    ds = make_tiny_dataset(tmp_path / "ds", groups=2, levels=1)
    out = tmp_path / "r"
    assert run.main(["--models", "texture_transfer,bicubic", "--datasets", str(ds), "--metrics", "psnr_y",
                     "--max-memory", "0.05", "--out", str(out), "--no-profile", "--no-publish"]) == 0
    df = pd.read_parquet(out / "results.parquet")
    tt = df[df["model"] == "texture_transfer"]
    assert (tt["status"] == "failed").all() and tt["reason"].str.contains(
        r"texture_transfer would need ~[0-9.]+ GiB for LR 12x12 / Ref 48x48, limit 0\.[01] GiB; set --max-memory").all()
    assert (df[df["model"] == "bicubic"]["status"] == "ok").all()


def test_bomb_header_zero_byte_checkpoint_and_4000x3000_reference_each_cost_only_themselves(
        tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)  # 64x64, textured
    for name in ("a", "b", "c"):
        Image.fromarray(np.roll(small, ord(name), 1)).save(src / f"{name}.png")
    yy, xx = np.mgrid[0:3000, 0:4000]
    Image.fromarray(np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)).save(
        src / "huge.png", compress_level=1)
    bomb_png(src / "bomb.png")
    (src / "pairs.csv").write_text("hr,ref\na.png,b.png\nbomb.png,b.png\nc.png,huge.png\n")
    import_main = importlib.import_module("builders.import").main  # "import" is a keyword
    assert import_main(["--layout", "pairs", "--src", str(src), "--out", str(tmp_path / "ds")]) == 0
    report = capsys.readouterr().out
    assert report.count("bomb.png") == 1 and "too-many-pixels" in report

    weights = tmp_path / "w"
    (weights / "ttsr").mkdir(parents=True)
    (weights / "ttsr" / "TTSR.pt").write_bytes(b"")
    monkeypatch.setenv("REFSR_WEIGHTS", str(weights))
    from models import MODELS

    info = MODELS.info("texture_transfer")  # a smaller limit keeps the test fast; the path is the same
    monkeypatch.setitem(info, "spec", replace(info["spec"], max_ref_side=320))
    out = tmp_path / "run"
    assert run.main(["--models", "bicubic,ttsr,texture_transfer", "--datasets", str(tmp_path / "ds"),
                     "--metrics", "psnr_y", "--out", str(out), "--no-profile", "--no-publish"]) == 0
    printed = capsys.readouterr()
    assert (printed.out + printed.err).count("TTSR.pt") == 1  # the checkpoint: named once, as not scored
    df = pd.read_parquet(out / "results.parquet")
    assert (df["status"] == "ok").all() and set(df["model"]) == {"bicubic", "texture_transfer"}
    assert set(df["image"]) == {"a~b", "c~huge"}  # every sample but the bomb, for every scorable model
    notes = df[df["image"] == "c~huge"].set_index("model")["reason"]
    assert notes["bicubic"] == ""
    assert notes["texture_transfer"] == "reference resized from 4000x3000 to 320x240 (texture_transfer max_ref_side 320)"
    assert (df[df["image"] == "a~b"]["reason"] == "").all()


class _NotWeights:
    """A pickled object: ``weights_only=True`` refuses to build it (nothing of it runs)."""


@pytest.mark.parametrize("kind", ["zero-byte", "truncated", "pickle"])
def test_unreadable_checkpoints_name_the_file_and_never_suggest_unsafe_loading(tmp_path, kind):
    from models.checkpoint import CheckpointError, read_state_dict

    path = tmp_path / f"{kind}.pt"
    torch.save({"w": torch.zeros(64, 64)} if kind == "truncated" else {"obj": _NotWeights()}, path)
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError) as e:
        read_state_dict(path)
    assert str(path) in str(e.value) and "weights_only=False" not in str(e.value)


def test_outputs_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        ds = make_tiny_dataset(tmp_path / "ds", groups=1, levels=1)
        assert run.main(["--models", "bicubic", "--datasets", str(ds), "--metrics", "psnr_y",
                         "--out", str(tmp_path / "r"), "--no-profile"]) == 0
    finally:
        os.umask(old)
    files = [p for root in (ds, tmp_path / "r") for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert any(p.name == "results.parquet" for p in files) and any(p.name == "manifest.parquet" for p in files)
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o644"}


def test_a_20000_squared_header_is_refused_before_decoding(tmp_path):
    from builders.images import BadImage, read_rgb

    path = tmp_path / "big.png"
    bomb_png(path)
    data = bytearray(path.read_bytes())  # the same 74 bytes claiming 20000x20000 (400 MP)
    data[16:24] = struct.pack(">II", 20_000, 20_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    with pytest.raises(BadImage, match="too-many-pixels .*400000000 pixels"):
        read_rgb(path)
