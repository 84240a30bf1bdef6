import pandas as pd

from benchmark.results import COLUMNS, KEY, ResultStore


def _rows(images, metric_values):
    base = {"suite": "s", "model": "m", "weights": "none", "dataset": "d", "split": "test", "variant": "clean",
            "level": 1, "higher_is_better": True, "status": "ok", "reason": "", "protocol": "p",
            "protocol_hash": "h", "device": "cpu", "dtype": "float32", "seed": 0, "git_sha": "x",
            "dataset_hash": "y", "versions": "{}", "weights_sha256": "{}"}
    return [{**base, "image": i, "metric": k, "value": v} for i in images for k, v in metric_values.items()]


def test_store_flush_resume_and_merge_without_duplicates(tmp_path):
    store = ResultStore(tmp_path)
    store.add(_rows(["b", "a"], {"psnr_y": 30.0, "ssim_y": 0.9}))
    store.flush()
    # a second process resumes: it sees the finished images and re-adds one by mistake
    store2 = ResultStore(tmp_path)
    made_from = ("y", "h", "{}", 0, "float32")  # dataset_hash, protocol_hash, weights_sha256, seed, dtype
    assert store2.done_images() == {("m", "none", "d", "clean", "a", *made_from),
                                    ("m", "none", "d", "clean", "b", *made_from)}
    store2.add(_rows(["a", "c"], {"psnr_y": 31.0, "ssim_y": 0.8}))
    df = store2.merge()
    assert list(df.columns) == COLUMNS
    assert len(df) == 6 and not df.duplicated(KEY).any()
    assert df[(df["image"] == "a") & (df["metric"] == "psnr_y")]["value"].item() == 31.0  # the newest write wins
    assert list(df["image"]) == sorted(df["image"])  # stable order
    assert not list((tmp_path / "parts").glob("*.parquet"))
    pd.testing.assert_frame_equal(ResultStore(tmp_path).load(), df)


def test_part_files_are_written_atomically(tmp_path):
    store = ResultStore(tmp_path)
    store.add(_rows(["a"], {"psnr_y": 1.0}))
    store.flush()
    leftovers = [p.name for p in (tmp_path / "parts").iterdir() if p.name.startswith(".")]
    assert leftovers == []
