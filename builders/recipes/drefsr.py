"""DRefSR-style datasets (SSMTF, IJCV 2025): geometrically verified pairs, reference crops on the content.

A pair is kept when its RANSAC model (homography by default, or fundamental matrix) has at least
``min_inliers`` inliers; otherwise it is counted as ``pair-unverified``. The HR image of a pair
(seeded coin) is cut into a grid of non-overlapping ``crop_size`` cells; a cell holding at least
``min_crop_inliers`` verified matches is a *candidate*. Its reference crop is centred where the
cell's content lies in the other image: through the homography (cell centre mapped), or, for the
fundamental matrix, at the median of the cell's verified matches. A candidate is *verified* when
enough verified matches fall inside both crops and (homography) the projected cell covers at least
``min_overlap`` of the reference crop. Up to ``crops_per_pair`` verified crops per pair are written
(seeded choice); the report counts candidates, verified and written crops.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..albums import Album
from ..config import as_config, option
from ..crops import cut, inside, place_by_homography, place_by_matches, shared_inliers
from ..degrade import make_lr
from ..levels import LevelConfig, album_edges, assign
from ..report import BuildReport
from ..writer import Array, Row
from . import RECIPES
from ._common import PAIR_COLUMNS, SPLITS, AlbumConfig, build_recipe, load_rgb, rng_for

SUMMARY = "DRefSR-style: RANSAC-verified pairs, several reference crops placed on the HR crop's content"

COLUMNS = {**PAIR_COLUMNS,
           "hr_x": "int64", "hr_y": "int64",
           "ref_x": "int64", "ref_y": "int64", "crop_size": "int64", "crop_inliers": "int64", "overlap": "float64"}


@dataclass(frozen=True)
class Config(AlbumConfig):
    name: ClassVar[str] = "drefsr"
    version: ClassVar[str] = "1.0"

    levels: LevelConfig = option(help="levels", factory=lambda: LevelConfig(n=1, method="rank"))
    split: str = option("both", "which splits to build (albums, not images, are split)", choices=SPLITS)
    crops_per_pair: int = option(4, "verified crops written per image pair at most")
    min_inliers: int = option(25, "RANSAC inliers a pair needs to count as verified")
    min_crop_inliers: int = option(6, "verified crop: at least this many inliers inside both crops")
    min_overlap: float = option(0.5, "verified crop (homography): projected HR crop covers this share")

    def __post_init__(self):
        super().__post_init__()
        if self.sift.geometry == "none":
            raise ValueError("drefsr verifies pairs geometrically: sift.geometry must be homography or fundamental")


@dataclass
class _Pair:
    album: Album
    hr: int
    ref: int
    level: int
    crops: list  # [(hr_box, ref_box, n_inliers, overlap)]
    split: str = ""


def _grid(shape: tuple[int, int], size: int) -> list[tuple[int, int, int, int]]:
    h, w = shape
    return [(x, y, size, size) for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]


def _plan_pair(album: Album, i: int, j: int, cfg: Config, edges, seed: int, report: BuildReport) -> _Pair | None:
    s = album.score(i, j)
    if s.model is None or s.inliers < cfg.min_inliers:
        report.skip("pair-unverified", f"{album.rel[i]} ~ {album.rel[j]}")
        return None
    rng = rng_for(seed, "drefsr", album.rel[i], album.rel[j])
    hr, ref = (i, j) if rng.random() < 0.5 else (j, i)
    pts_hr, pts_ref = (s.pts_a, s.pts_b) if hr < ref else (s.pts_b, s.pts_a)
    homography = None
    if cfg.sift.geometry == "homography":
        homography = s.model if hr < ref else np.linalg.inv(s.model)
    hr_shape, ref_shape = album.images[hr].size, album.images[ref].size
    verified = []
    for box in _grid(hr_shape, cfg.crop_size):
        if int(inside(pts_hr, box).sum()) < cfg.min_crop_inliers:
            continue
        report.crops["candidates"] += 1
        if homography is not None:
            ref_box, cover = place_by_homography(homography, box, ref_shape, cfg.crop_size)
        else:
            ref_box, cover = place_by_matches(pts_hr, pts_ref, box, ref_shape, cfg.crop_size), float("nan")
        if ref_box is None:
            continue
        n_in = shared_inliers(pts_hr, pts_ref, box, ref_box)
        if n_in >= cfg.min_crop_inliers and (homography is None or cover >= cfg.min_overlap):
            verified.append((box, ref_box, n_in, cover))
    report.crops["verified"] += len(verified)
    if not verified:
        report.skip("pair-no-verified-crop", f"{album.rel[hr]} ~ {album.rel[ref]}")
        return None
    keep = sorted(rng.permutation(len(verified))[: cfg.crops_per_pair].tolist())
    cands = [(album.rel[k], float(album.score(hr, k).score))
             for k in range(len(album.images)) if k != hr and album.score(hr, k) is not None]
    level = assign(cands, edges, cfg.levels)[album.rel[ref]]
    return _Pair(album, hr, ref, level, [verified[k] for k in keep])


def plan(albums: list[Album], splits: dict[str, str], cfg: Config, seed: int, report: BuildReport) -> list[_Pair]:
    """The verified pairs with their chosen crops, album by album (split: ``splits[pair.album.name]``)."""
    items: list[_Pair] = []
    for album in albums:
        edges = album_edges([float(s.score) for s in album.pairs.values()], cfg.levels)
        report.level_edges[album.name] = edges
        for (i, j) in sorted(album.pairs):
            pair = _plan_pair(album, i, j, cfg, edges, seed, report)
            if pair is not None:
                pair.split = splits[album.name]
                items.append(pair)
    return items


def generate(items, cfg: Config, seed: int, report: BuildReport) -> Iterator[Row]:
    """One row per planned crop, numbered per split in plan order."""
    counters = {"train": 0, "test": 0}
    report.crops["written"] += 0
    for p in items:
        al, split = p.album, p.split
        s = al.score(p.hr, p.ref)
        kp_hr, kp_ref = (s.keypoints_a, s.keypoints_b) if p.hr < p.ref else (s.keypoints_b, s.keypoints_a)
        hr_img, ref_img = load_rgb(al.images[p.hr].path), load_rgb(al.images[p.ref].path)
        for hr_box, ref_box, n_in, cover in p.crops:
            name = f"{counters[split]:06d}"
            counters[split] += 1
            hr_crop = cut(hr_img, hr_box)
            rel = {k: f"{split}/{k}/{name}.png" for k in ("hr", "ref", "lr")}
            report.crops["written"] += 1
            yield Row(dict(
                sample_id=f"{split}_{name}", split=split, group=al.name, level=p.level, **rel,
                album=al.name, hr_source=al.rel[p.hr], ref_source=al.rel[p.ref], score=s.score,
                keypoints_hr=kp_hr, keypoints_ref=kp_ref, matches=s.matches, inliers=s.inliers,
                scale=cfg.scale, lr_kernel=cfg.lr_kernel, hr_x=hr_box[0], hr_y=hr_box[1],
                ref_x=ref_box[0], ref_y=ref_box[1], crop_size=cfg.crop_size, crop_inliers=n_in,
                overlap=cover),
                {rel["hr"]: Array(hr_crop), rel["ref"]: Array(cut(ref_img, ref_box)),
                 rel["lr"]: Array(make_lr(hr_crop, cfg.scale, cfg.lr_kernel))})


@RECIPES.register(Config.name, summary=SUMMARY, config=Config)
def build(albums_dir: str | os.PathLike, out_dir: str | os.PathLike, config: Config | dict | None = None,
          seed: int = 0, jobs: int = 1, *, overwrite: bool = False, cache_dir: str | os.PathLike | None = None,
          progress: Callable | None = None, shard: tuple[int, int] | None = None,
          merge_shards: int | None = None, device: str | None = None) -> BuildReport:
    """Build a DRefSR-style dataset from ``albums_dir`` into ``out_dir``; return the build report."""
    return build_recipe(as_config(Config, config), plan, generate, COLUMNS, albums_dir, out_dir, seed, jobs,
                        overwrite=overwrite, cache_dir=cache_dir, progress=progress, shard=shard,
                        merge_shards=merge_shards, device=device)
