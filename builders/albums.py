"""Albums in, scored pairs out: the stage shared by every album recipe.

An albums folder holds one sub-folder per album (a folder of images with no sub-folders is one
album). Every image is read once, checked (unreadable, too small, duplicate pixels, a near-duplicate
of an earlier image of its album: skipped with a reason; grayscale/alpha/16-bit/EXIF-rotated: converted
and counted), its SIFT features computed once; then every
unordered pair inside an album is scored once, the image earlier in name order being the query
(in albums above ``SiftParams.retrieval_above`` images, only each image's top-k candidate pairs by a
global descriptor: ``builders.retrieval``).
"""
from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .images import list_images
from .report import BuildReport
from .retrieval import candidate_pairs
from .sift import ImageRecord, PairScore, SiftParams, read_images, score_pairs, thumbnail_psnr

if TYPE_CHECKING:  # imported where the pair table is made, so the CLIs' --help stays fast
    import pandas as pd

#: thumbnail PSNR (dB) from which two images of an album count as copies of one photo: distinct
#: views in the Oxford, Lund, Sacré-Cœur and VLFeat albums reach at most 36.4 dB (Oxford bikes, two
#: blur levels of one view); JPEG re-encodes (q50-95) and half-size copies give 56.7 dB and more
NEAR_DUPLICATE_PSNR = 45.0


@dataclass
class AlbumLog:
    """What scanning one album adds to the build report, kept per album so that shards merge exactly."""

    skips: list[tuple[str, str]] = field(default_factory=list)     # (reason, input)
    converted: Counter = field(default_factory=Counter)
    pairs_scored: int = 0
    pairs_not_verified: int = 0

    def skip(self, reason: str, where: str) -> None:
        self.skips.append((reason, str(where)))

    def into(self, report: BuildReport) -> None:
        for reason, where in self.skips:
            report.skip(reason, where)
        report.converted.update(self.converted)
        report.pairs_scored += self.pairs_scored
        report.pairs_not_verified += self.pairs_not_verified


@dataclass
class Album:
    name: str
    images: list[ImageRecord]                      # usable images, name order
    rel: list[str]                                 # their paths relative to the albums folder
    pairs: dict[tuple[int, int], PairScore] = field(default_factory=dict)   # i < j, matched pairs only
    log: AlbumLog = field(default_factory=AlbumLog)

    def score(self, i: int, j: int) -> PairScore | None:
        return self.pairs.get((min(i, j), max(i, j)))


def album_folders(albums_dir: Path) -> list[Path]:
    subs = sorted(p for p in albums_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs and list_images(albums_dir):
        return [albums_dir]
    return subs


def scan(albums_dir: str | os.PathLike, params: SiftParams, report: BuildReport, *, min_side: int,
         jobs: int = 1, cache_dir: str | os.PathLike | None = None, min_matches: int = 1,
         progress: Callable | None = None, batch_images: int = 1024,
         near_duplicate_psnr: float = NEAR_DUPLICATE_PSNR, device: str | None = None) -> list[Album]:
    """Read, check and score every album; every unusable input is counted in ``report``.

    Albums are processed in batches of about ``batch_images`` images, and features are dropped once
    a batch is scored, so memory stays bounded for CUFED-sized collections (1,883 albums).
    """
    return collect(scan_albums(albums_dir, params, report, min_side=min_side, jobs=jobs, cache_dir=cache_dir,
                               min_matches=min_matches, progress=progress, batch_images=batch_images,
                               near_duplicate_psnr=near_duplicate_psnr, device=device), report)


def collect(albums: list[Album], report: BuildReport) -> list[Album]:
    """Count every album's log into ``report``; return the usable albums (two images or more)."""
    for album in albums:
        album.log.into(report)
    return [album for album in albums if len(album.images) >= 2]


def album_name(root: Path, folder: Path) -> str:
    return folder.name if folder != root else root.name


def list_albums(albums_dir: str | os.PathLike, report: BuildReport) -> tuple[Path, list[Path], dict[Path, list[Path]]]:
    """(root, album folders, their images); counts albums, images and stray photos in ``report``."""
    root = Path(albums_dir)
    if not root.exists():
        raise FileNotFoundError(f"albums folder {root} does not exist")
    if not root.is_dir():
        raise ValueError(f"--albums {root} is a file, not a folder of album folders")
    folders = album_folders(root)
    listed = {folder: list_images(folder) for folder in folders}
    if not any(listed.values()):
        raise ValueError(f"no images in {root}: it should hold one sub-folder of photos per album "
                         f"(or be one folder of photos)")
    if root not in folders:  # photos beside the album folders belong to no album
        for stray in list_images(root):
            report.skip("image-outside-albums", stray.name)
    report.albums, report.images = len(folders), sum(map(len, listed.values()))
    return root, folders, listed


def scan_albums(albums_dir: str | os.PathLike, params: SiftParams, report: BuildReport, *, min_side: int,
                jobs: int = 1, cache_dir: str | os.PathLike | None = None, min_matches: int = 1,
                progress: Callable | None = None, batch_images: int = 1024,
                near_duplicate_psnr: float = NEAR_DUPLICATE_PSNR, only: Callable[[str], bool] | None = None,
                device: str | None = None) -> list[Album]:
    """Every album (``only``: those whose name it accepts) scanned, unusable ones included, each
    with its own log (not yet counted in ``report``, which gets the listing counts and stage times)."""
    root, folders, listed = list_albums(albums_dir, report)
    if only is not None:
        folders = [f for f in folders if only(album_name(root, f))]
    seen: dict[str, str] = {}
    albums: list[Album] = []
    batch: list[Path] = []
    for k, folder in enumerate(folders):
        batch.append(folder)
        if k == len(folders) - 1 or sum(len(listed[f]) for f in batch) + len(listed[folders[k + 1]]) > batch_images:
            albums += scan_batch(root, batch, listed, params, report, seen, min_side=min_side, jobs=jobs,
                                 cache_dir=cache_dir, min_matches=min_matches, progress=progress,
                                 near_duplicate_psnr=near_duplicate_psnr, device=device)
            batch = []
    return albums


def scan_batch(root: Path, folders: list[Path], listed: dict, params: SiftParams, report: BuildReport,
               seen: dict[str, str], *, min_side, jobs, cache_dir, min_matches, progress,
               near_duplicate_psnr, device=None) -> list[Album]:
    """Scan ``folders`` in order; ``seen`` holds the pixel hashes of the images kept so far (updated)."""
    t0 = time.perf_counter()
    paths = [p for f in folders for p in listed[f]]
    wrap = (lambda it, total: progress(it, total, "features")) if progress else None
    records = dict(zip(paths, read_images(paths, params, jobs=jobs, cache_dir=cache_dir, progress=wrap)))
    report.stage("features", time.perf_counter() - t0)

    everything: list[Album] = []
    for folder in folders:
        album = Album(name=album_name(root, folder), images=[], rel=[])
        log = album.log
        everything.append(album)
        for path in listed[folder]:
            rec, rel = records[path], path.relative_to(root).as_posix()
            if rec.error:
                log.skip(rec.error, rel)
                continue
            if min(rec.size) < min_side:
                log.skip("too-small", rel)
                continue
            if rec.pixel_sha256 in seen:
                log.skip("duplicate", rel)
                continue
            twin = next((album.rel[k] for k, other in enumerate(album.images)
                         if thumbnail_psnr(rec.thumb, other.thumb) >= near_duplicate_psnr), None)
            if twin is not None:  # a re-encoded, resized or slightly edited copy: never its own reference
                log.skip("near-duplicate", f"{rel} (of {twin})")
                continue
            seen[rec.pixel_sha256] = rel
            for note in rec.notes:
                log.converted[note] += 1
            album.images.append(rec)
            album.rel.append(rel)
        if len(album.images) < 2:
            log.skip("album-single-image" if album.images else "album-empty", album.name)
    albums = [album for album in everything if len(album.images) >= 2]

    t0 = time.perf_counter()
    feats, tasks, owners = [], [], []
    for a, album in enumerate(albums):
        off = len(feats)
        feats.extend(rec.features for rec in album.images)
        n = len(album.images)
        if params.retrieval_above and n > params.retrieval_above:
            pairs = candidate_pairs([rec.features for rec in album.images], params.retrieval_k, params.ratio,
                                    device=device)
            album.log.pairs_not_verified = n * (n - 1) // 2 - len(pairs)
        else:
            pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        album.log.pairs_scored = len(pairs)
        for i, j in pairs:
            tasks.append((off + i, off + j))
            owners.append((a, i, j))
    wrap = (lambda it, total: progress(it, total, "pairs")) if progress else None
    scores = score_pairs(feats, tasks, params, jobs=jobs, progress=wrap, device=device)
    report.stage("matching", time.perf_counter() - t0)
    for (a, i, j), s in zip(owners, scores):
        album = albums[a]
        if s.matches < min_matches:
            album.log.skip("pair-no-matches", f"{album.rel[i]} ~ {album.rel[j]}")
            continue
        album.pairs[(i, j)] = s
    for album in everything:
        for rec in album.images:
            rec.features = None      # scored: keep counts and verified points only
            rec.thumb = None
    return everything


def pairs_table(albums: list[Album]) -> pd.DataFrame:
    """Raw counts of every matched pair (saved as ``pairs.parquet`` beside the manifest)."""
    rows = [{"album": al.name, "a": al.rel[i], "b": al.rel[j], "keypoints_a": s.keypoints_a,
             "keypoints_b": s.keypoints_b, "matches": s.matches, "inliers": s.inliers, "score": s.score}
            for al in albums for (i, j), s in sorted(al.pairs.items())]
    cols = ["album", "a", "b", "keypoints_a", "keypoints_b", "matches", "inliers", "score"]
    import pandas as pd

    return pd.DataFrame(rows, columns=cols).astype({c: "int64" for c in cols[3:]})
