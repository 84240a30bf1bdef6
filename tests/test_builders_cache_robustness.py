"""A corrupt SIFT cache entry is recomputed, a failed cache write leaves nothing, and the temporary
folder of a killed build is removed by the next build of the same output (issue 9)."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from builders import sift
from builders.report import BuildReport
from builders.writer import Array, Row, write_dataset
from tests.builders_synth import texture

REPO = Path(__file__).resolve().parents[1]


def _image(tmp_path: Path) -> Path:
    import cv2
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), texture(7, 120, 160))
    return path


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "wrong-arrays"])
def test_corrupt_cache_entry_is_recomputed_with_a_warning_naming_it(tmp_path, damage):
    path, cache_dir, p = _image(tmp_path), tmp_path / "cache", sift.SiftParams(nfeatures=200)
    fresh = sift.read_images([path], p, cache_dir=cache_dir)[0].features
    (entry,) = cache_dir.glob("*.npz")
    data = entry.read_bytes()
    entry.write_bytes({"truncated": data[: len(data) // 2], "garbage": os.urandom(500), "empty": b""}.get(damage, b""))
    if damage == "wrong-arrays":
        with open(entry, "wb") as f:
            np.savez(f, xy=np.zeros((3, 2), np.float32), desc=np.zeros((5, 128), np.uint8))
    sift._CACHES.clear()                       # a new process: nothing in memory
    with pytest.warns(UserWarning, match=f"SIFT cache entry {entry}.*recomputing"):
        again = sift.read_images([path], p, cache_dir=cache_dir)[0].features
    assert np.array_equal(again.desc, fresh.desc) and np.array_equal(again.xy, fresh.xy)
    sift._CACHES.clear()
    assert np.array_equal(sift.FeatureCache(cache_dir).get(entry.stem).desc, fresh.desc)   # rewritten whole


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_cache_write_leaves_no_file(tmp_path, monkeypatch, failure):
    feats = sift.Features(np.zeros((4, 2), np.float32), np.ones((4, 128), np.uint8))
    cache = sift.FeatureCache(tmp_path / "cache")

    def fail(fd):
        raise failure
    monkeypatch.setattr("core.files.os.fsync", fail)   # the data is written, the disk fills before it is synced
    if isinstance(failure, OSError):
        with pytest.warns(UserWarning, match="could not write SIFT cache entry .*No space left"):
            cache.put("k", feats)                # the build goes on; only the cache lacks the entry
    else:
        with pytest.raises(KeyboardInterrupt):
            cache.put("k", feats)
    assert list((tmp_path / "cache").iterdir()) == []
    assert cache.get("k") is feats               # still served from memory


def test_stale_temporary_cache_files_are_removed(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    old, new = folder / ".abc.npz.x1y2z3", folder / ".def.npz.q1w2e3"
    old.write_bytes(b"partial")
    new.write_bytes(b"being written")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    sift.FeatureCache(folder)
    assert not old.exists() and new.exists()     # another process may still be writing the recent one


KILLED_BUILD = """
import sys, time
from builders.writer import DatasetFolder
with DatasetFolder(sys.argv[1]) as tmp:
    (tmp / "half.png").write_bytes(b"x")
    print(tmp, flush=True)
    time.sleep(60)
"""


def test_next_build_removes_the_temporary_folder_of_a_killed_build(tmp_path):
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    with proc.stdout:
        left = Path(proc.stdout.readline().strip())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert left.is_dir() and left.name.startswith(".ds.tmp-") and not out.exists()
    other = tmp_path / f".ds.tmp-{os.getpid()}@{os.uname().nodename}-abcdefgh"   # a live build: kept
    other.mkdir()
    row = Row({"sample_id": "0", "split": "test", "group": "g", "level": 1, "hr": "test/0.png", "ref": "test/0.png"},
              {"test/0.png": Array(np.zeros((8, 8, 3), np.uint8))})
    with pytest.warns(UserWarning, match=f"removed {left}, left by a killed build"):
        write_dataset(out, [row], {"name": "ds"}, BuildReport("t"))
    assert not left.exists() and other.exists() and (out / "test" / "0.png").is_file()
