"""A build sharded by album (--shard K/N, then --merge-shards N) equals the unsharded build: the same
manifest rows, files and hashes, also when an album repeats an image of an album of another shard."""
from __future__ import annotations

import hashlib
import shutil

import yaml

from builders import build
from builders.shards import part_path, shard_of
from tests.builders_synth import VIEWS, make_album


def _albums(root):
    """Four albums over two shards; the last repeats (byte for byte) an image of an album of the other shard."""
    names = [f"album{k}" for k in range(12)]
    first = next(n for n in names if shard_of(n, 2) == 0)
    second = next(n for n in names if shard_of(n, 2) == 1)
    third = next(n for n in names if shard_of(n, 2) == 0 and n != first)
    last = next(n for n in sorted(names, reverse=True) if shard_of(n, 2) == 1 and n != second)
    for seed, name in enumerate([first, second, third, last]):
        make_album(root / name, seed=300 + seed, views=VIEWS)
    dup_from, dup_to = sorted([first, last])   # the copy sits in the later album, in the other shard
    shutil.copyfile(root / dup_from / "img2.png", root / dup_to / "img9.png")
    return root


def _tree(folder):
    """Every file's sha256 (spec.yaml: without the stage times, which differ from run to run)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "spec.yaml":
                spec = yaml.safe_load(data)
                spec["report"].pop("seconds")
                spec.pop("name")
                data = yaml.safe_dump(spec).encode()
            out[p.relative_to(folder).as_posix()] = hashlib.sha256(data).hexdigest()
    return out


def test_sharded_build_merges_into_the_unsharded_dataset(tmp_path, capsys):
    albums = _albums(tmp_path / "albums")
    common = ["--recipe", "cufed5", "--albums", str(albums), "--split", "both", "--test-fraction", "0.5",
              "--nfeatures", "300", "--jobs", "1", "--quiet"]
    assert build.main(common + ["--out", str(tmp_path / "whole")]) == 0
    sharded = tmp_path / "sharded"
    assert build.main(common + ["--out", str(sharded), "--merge-shards", "2"]) == 2
    assert "shards [0, 1] of 2 have no part" in capsys.readouterr().err
    for k in (1, 0):
        assert build.main(common + ["--out", str(sharded), "--shard", f"{k}/2"]) == 0
        assert part_path(sharded, k, 2).is_file() and not sharded.exists()
    assert build.main(common + ["--out", str(sharded), "--merge-shards", "2"]) == 0
    whole, merged = _tree(tmp_path / "whole"), _tree(sharded)
    assert whole == merged and "manifest.parquet" in whole and len(whole) > 20
    report = yaml.safe_load((sharded / "spec.yaml").read_text())["report"]
    assert report["skipped"].get("duplicate") == 1      # found across shards, at the merge

    assert build.main(common + ["--out", str(tmp_path / "x"), "--shard", "2/2"]) == 2
    assert "shards count from 0, K must be 0 .. 1" in capsys.readouterr().err
    assert build.main(common + ["--out", str(sharded), "--merge-shards", "2", "--overwrite", "--ratio", "0.7"]) == 2
    assert "made with other options (sift differ)" in capsys.readouterr().err
