"""Sharded album builds: the SIFT scan spread over N processes or machines, one exact merge.

Albums go to shard ``int(sha256(album name)) mod N`` (stable across machines and runs). Shard K
(counted from 0) scans only its albums (features, pair scores: the expensive part) and writes one
part file, ``OUT.shards/part-K-of-N.npz`` (atomic; plain arrays and JSON, no pickle). The merge reads
every part, walks the albums in the unsharded order and hands the recipe exactly the scan an
unsharded build would have made, so the dataset (manifest rows, files, hashes) is identical. The
one cross-album effect of a scan, an image whose pixels repeat an image kept in an earlier album of
another shard, is caught at the merge: that album is rescanned there (features from ``--cache`` or
recomputed).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from core.files import atomic_write_bytes

from .albums import Album, AlbumLog, album_name, collect, list_albums, scan_albums, scan_batch
from .manifest import DatasetError
from .report import BuildReport
from .sift import ImageRecord, PairScore, SiftParams

FORMAT = 1


def shard_of(name: str, n: int) -> int:
    """The shard (0 .. n-1) of the album ``name``."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:16], 16) % n


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N); shards count from 0, so K is 0 .. N-1."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard wants K/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard {text}: shards count from 0, K must be 0 .. {n - 1}")
    return k, n


def part_path(out: str | os.PathLike, k: int, n: int) -> Path:
    out = Path(out)
    return out.parent / f"{out.name}.shards" / f"part-{k}-of-{n}.npz"


def _album_to_dict(album: Album, listed: list[str]) -> dict:
    return {"name": album.name, "listed": listed, "rel": album.rel,
            "images": [[r.sha256, r.pixel_sha256, list(r.size), list(r.notes)] for r in album.images],
            "log": {"skips": album.log.skips, "converted": dict(album.log.converted),
                    "pairs_scored": album.log.pairs_scored, "pairs_not_verified": album.log.pairs_not_verified},
            "pairs": [[i, j, s.keypoints_a, s.keypoints_b, s.matches, s.inliers, s.score, s.model is not None,
                       len(s.pts_a)] for (i, j), s in sorted(album.pairs.items())]}


def write_part(path: Path, albums: list[Album], listed: dict[str, list[str]], header: dict) -> None:
    pairs = [s for album in albums for _, s in sorted(album.pairs.items())]
    meta = {"header": header, "albums": [_album_to_dict(a, listed[a.name]) for a in albums]}
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
             models=np.array([s.model for s in pairs if s.model is not None], np.float64).reshape(-1, 3, 3),
             pts_a=np.concatenate([s.pts_a for s in pairs] or [np.zeros((0, 2), np.float32)]).astype(np.float32),
             pts_b=np.concatenate([s.pts_b for s in pairs] or [np.zeros((0, 2), np.float32)]).astype(np.float32))
    atomic_write_bytes(path, buf.getvalue())


def read_part(path: Path, root: Path) -> tuple[dict, list[tuple[Album, list[str]]]]:
    """(header, [(album, the image paths it was listed with)]) of one part."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes())
        models, pts_a, pts_b = z["models"], z["pts_a"], z["pts_b"]
    out, m, p = [], 0, 0
    for d in meta["albums"]:
        images = [ImageRecord(path=str(root / rel), sha256=sha, pixel_sha256=pix, size=tuple(size), notes=tuple(notes))
                  for rel, (sha, pix, size, notes) in zip(d["rel"], d["images"])]
        log = AlbumLog(skips=[tuple(s) for s in d["log"]["skips"]], converted=Counter(d["log"]["converted"]),
                       pairs_scored=d["log"]["pairs_scored"], pairs_not_verified=d["log"]["pairs_not_verified"])
        album = Album(name=d["name"], images=images, rel=d["rel"], log=log)
        for i, j, kpa, kpb, matches, inliers, score, has_model, n_pts in d["pairs"]:
            model = models[m] if has_model else None
            m += bool(has_model)
            album.pairs[(i, j)] = PairScore(keypoints_a=kpa, keypoints_b=kpb, matches=matches, inliers=inliers,
                                            score=score, model=model, pts_a=pts_a[p:p + n_pts].copy(),
                                            pts_b=pts_b[p:p + n_pts].copy())
            p += n_pts
        out.append((album, d["listed"]))
    return meta["header"], out


def run_shard(albums_dir, out, shard: tuple[int, int], params: SiftParams, header: dict, report: BuildReport,
              **scan_options) -> Path:
    """Scan the albums of shard ``(k, n)`` and write its part; return the part's path."""
    k, n = shard
    root = Path(albums_dir)
    albums = scan_albums(root, params, report, only=lambda name: shard_of(name, n) == k, **scan_options)
    _, folders, listing = list_albums(root, BuildReport(""))
    listed = {album_name(root, f): [p.relative_to(root).as_posix() for p in listing[f]] for f in folders}
    collect(albums, report)
    report.recipe = f"{report.recipe}, shard {k}/{n}"
    report.albums, report.images = len(albums), sum(len(listed[a.name]) for a in albums)
    path = part_path(out, k, n)
    write_part(path, albums, listed, {**header, "shard": k, "shards": n, "format": FORMAT})
    report.out = str(path)
    return path


def merge(albums_dir, out, n: int, params: SiftParams, header: dict, report: BuildReport, **scan_options
          ) -> list[Album]:
    """The usable albums of an unsharded scan, from the ``n`` parts of ``out`` (rescanning an album
    only when it repeats an image of an earlier album of another shard)."""
    root = Path(albums_dir)
    paths = [part_path(out, k, n) for k in range(n)]
    missing = [k for k, p in enumerate(paths) if not p.is_file()]
    if missing:
        raise DatasetError(f"shards {missing} of {n} have no part in {paths[0].parent}: run "
                           f"--shard K/{n} for each first")
    parts: dict[str, tuple[Album, list[str]]] = {}
    for k, path in enumerate(paths):
        got, albums = read_part(path, root)
        want = {**header, "shard": k, "shards": n, "format": FORMAT}
        if got != want:
            diff = sorted(key for key in set(got) | set(want) if got.get(key) != want.get(key))
            raise DatasetError(f"{path} was made with other options ({', '.join(diff)} differ); rerun that shard")
        parts.update((album.name, (album, listed)) for album, listed in albums)
    _, folders, listed = list_albums(root, report)
    seen: dict[str, str] = {}
    albums = []
    for folder in folders:
        name = album_name(root, folder)
        now = [p.relative_to(root).as_posix() for p in listed[folder]]
        if name not in parts or parts[name][1] != now:
            raise DatasetError(f"album {name} changed since its shard ({shard_of(name, n)}/{n}) ran; rerun it")
        album = parts[name][0]
        if any(rec.pixel_sha256 in seen for rec in album.images):
            album = scan_batch(root, [folder], listed, params, report, seen, **scan_options)[0]
        else:
            seen.update((rec.pixel_sha256, rel) for rec, rel in zip(album.images, album.rel))
        albums.append(album)
    return collect(albums, report)
