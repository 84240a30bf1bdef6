"""Protocol option ``lr.kernel: dataset`` (preset ``dataset-lr``): the model gets the dataset's own LR
files unchanged, the choice is part of the protocol hash, and a sample whose LR is missing or of the
wrong size is a failed row that says why."""
from __future__ import annotations

import numpy as np
import pytest

import benchmark
from benchmark.protocol import load_protocol
from builders.report import BuildReport
from builders.writer import Array, Row, make_spec, write_dataset
from builders.images import read_rgb
from core.resize import imresize, imresize_tensor

pytestmark = pytest.mark.usefixtures("one_thread")


def _dataset(root, lr_for):
    """Three HR/ref pairs (HR 50x61, not a multiple of 4); ``lr_for(i, hr_cropped)`` gives the LR file."""
    rng = np.random.default_rng(3)

    def rows():
        for i in range(3):
            hr = rng.integers(0, 256, (50, 61, 3), dtype=np.uint8)
            ref = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            files = {f"hr/{i}.png": Array(hr), f"ref/{i}.png": Array(ref)}
            lr = lr_for(i, hr[:48, :60])
            if lr is not None:
                files[f"lr/{i}.png"] = Array(lr)
            yield Row({"sample_id": f"s{i}", "split": "test", "group": f"g{i}", "level": 1, "hr": f"hr/{i}.png",
                       "ref": f"ref/{i}.png", "lr": f"lr/{i}.png" if lr is not None else ""}, files)

    spec = make_spec(name=root.name, kind="recipe", created_by="test", version="1", config={}, seed=0)
    write_dataset(root, rows(), spec, BuildReport("test"))
    return root


def _matlab_lr(i, hr):
    return np.clip(np.round(imresize(hr, size=(hr.shape[0] // 4, hr.shape[1] // 4))), 0, 255).astype(np.uint8)


def test_model_receives_the_dataset_lr_and_the_hash_differs(tmp_path):
    ds = _dataset(tmp_path / "with_lr", _matlab_lr)
    seen = []

    def upsample(lr, ref):
        seen.append((lr[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8).tobytes())
        return imresize_tensor(lr, 4).clamp(0, 1)

    rows = benchmark.evaluate(upsample, str(ds), protocol="dataset-lr", metrics=["psnr_y"], name="up")
    assert (rows["status"] == "ok").all() and len(rows) == 3
    stored = {read_rgb(ds / f"lr/{i}.png")[0].tobytes() for i in range(3)}
    assert set(seen) == stored  # the files themselves (a warm-up call repeats the first one)
    assert rows["protocol_hash"].iloc[0] == load_protocol("dataset-lr").hash != load_protocol("refsr-standard").hash
    seen.clear()
    regenerated = benchmark.evaluate(upsample, str(ds), protocol="refsr-standard", metrics=["psnr_y"], name="up")
    assert not set(seen) & stored  # PIL bicubic of the HR, not the MATLAB-kernel files
    assert not np.allclose(rows.sort_values("image")["value"], regenerated.sort_values("image")["value"])


def test_missing_or_misfit_lr_is_a_failed_row_that_says_why(tmp_path):
    def lr_for(i, hr):
        return None if i == 0 else _matlab_lr(i, hr)[:-1] if i == 1 else _matlab_lr(i, hr)

    ds = _dataset(tmp_path / "bad_lr", lr_for)
    rows = benchmark.evaluate(lambda lr, ref: imresize_tensor(lr, 4).clamp(0, 1), str(ds), protocol="dataset-lr",
                              metrics=["psnr_y"], name="up").set_index("image")
    assert rows.loc["s2", "status"] == "ok"
    assert rows.loc["s0", "status"] == "failed" and "has none (manifest column 'lr')" in rows.loc["s0", "reason"]
    assert rows.loc["s1", "status"] == "failed" and "the dataset's LR is 15x11" in rows.loc["s1", "reason"]
    assert "needs 15x12 at x4" in rows.loc["s1", "reason"]
