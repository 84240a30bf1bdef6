"""Resume never returns stale rows: a rebuilt dataset or an edited protocol at the same path gives
the rows of a fresh run; failed images are tried again; merges racing each other lose nothing."""
from __future__ import annotations

import random
import threading
import time

import pandas as pd
import yaml

from benchmark import run
from benchmark.results import KEY, ResultStore
from tests.harness_data import make_tiny_dataset

ARGS = ["--models", "bicubic", "--metrics", "psnr_y,ssim_y", "--no-publish", "--no-profile", "--device", "cpu"]


def _rows(folder):
    df = pd.read_parquet(folder / "results.parquet")
    return df[KEY + ["value", "status"]].sort_values(KEY).reset_index(drop=True)


def test_rebuilt_dataset_and_edited_protocol_give_fresh_rows(tmp_path):
    ds = make_tiny_dataset(tmp_path / "ds", groups=3)
    proto = tmp_path / "p.yaml"
    proto.write_text(yaml.safe_dump({"base": "refsr-standard", "name": "mine"}))
    argv = [*ARGS, "--datasets", str(ds), "--protocol", str(proto), "--out", str(tmp_path / "r")]
    assert run.main(argv) == 0
    # the same path, other images (fewer groups) and a changed protocol
    make_tiny_dataset(tmp_path / "new", groups=2, size=56)
    import shutil

    shutil.rmtree(ds)
    shutil.move(tmp_path / "new", ds)
    proto.write_text(yaml.safe_dump({"base": "refsr-standard", "name": "mine", "score": {"border_crop": 0}}))
    assert run.main(argv) == 0
    fresh = [*ARGS, "--datasets", str(ds), "--protocol", str(proto), "--out", str(tmp_path / "fresh")]
    assert run.main(fresh) == 0
    pd.testing.assert_frame_equal(_rows(tmp_path / "r"), _rows(tmp_path / "fresh"))


def test_failed_images_are_retried(tmp_path):
    ds = make_tiny_dataset(tmp_path / "ds", groups=2)
    hr = ds / "test" / "000_0.png"
    good = hr.read_bytes()
    hr.write_bytes(b"not a png")
    argv = [*ARGS, "--datasets", str(ds), "--out", str(tmp_path / "r")]
    assert run.main(argv) == 0
    assert (pd.read_parquet(tmp_path / "r" / "results.parquet")["status"] == "failed").any()
    hr.write_bytes(good)
    assert run.main(argv) == 0
    assert (pd.read_parquet(tmp_path / "r" / "results.parquet")["status"] == "ok").all()


def test_interleaved_merges_lose_no_row(tmp_path, monkeypatch):
    real = pd.read_parquet

    def slow_read(*a, **k):  # widen every window between reading parts and writing results
        time.sleep(random.random() * 0.003)
        return real(*a, **k)

    monkeypatch.setattr(pd, "read_parquet", slow_read)
    row = {"suite": "s", "model": "m", "weights": "none", "dataset": "d", "split": "test", "variant": "clean",
           "level": 1, "protocol": "p", "metric": "psnr_y", "value": 1.0, "higher_is_better": True, "status": "ok",
           "reason": "", "seed": 0}
    for trial in range(100):
        folder = tmp_path / f"t{trial}"
        stores = [ResultStore(folder), ResultStore(folder)]
        for k, store in enumerate(stores):
            store.add([{**row, "image": f"{k}-{i}", "value": float(i)} for i in range(5)])
        threads = [threading.Thread(target=s.merge) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        df = real(folder / "results.parquet")
        assert len(df) == 10 and not list((folder / "parts").glob("*.parquet")), trial
