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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..albums import Album, scan
from ..crops import cut, inside, place_by_homography, place_by_matches, shared_inliers
from ..degrade import KERNELS, make_lr
from ..levels import LevelConfig, album_edges, assign
from ..manifest import DatasetWriter
from ..report import BuildReport
from ..sift import SiftParams
from . import RECIPES
from ._common import PAIR_COLUMNS, as_config, assign_splits, finish, load_rgb, rng_for, save, to_plain

RECIPE = "drefsr"
SUMMARY = "DRefSR-style: RANSAC-verified pairs, several reference crops placed on the HR crop's content"

COLUMNS = {**PAIR_COLUMNS,
           "hr_x": "int64", "hr_y": "int64",
           "ref_x": "int64", "ref_y": "int64", "crop_size": "int64", "crop_inliers": "int64", "overlap": "float64"}


@dataclass(frozen=True)
class Config:
    sift: SiftParams = field(default_factory=SiftParams)
    levels: LevelConfig = field(default_factory=lambda: LevelConfig(n=1, method="rank"))
    split: str = "both"
    test_fraction: float = 0.2
    scale: int = 4
    lr_kernel: str = "pil-bicubic"
    crop_size: int = 160
    crops_per_pair: int = 4
    min_inliers: int = 25           # verified pair: at least this many RANSAC inliers
    min_crop_inliers: int = 6       # verified crop: at least this many inliers inside both crops
    min_overlap: float = 0.5        # verified crop (homography): projected HR crop covers this share
    min_matches: int = 1

    def __post_init__(self):
        if self.lr_kernel not in KERNELS:
            raise ValueError(f"lr_kernel must be one of {KERNELS}")
        if self.sift.geometry == "none":
            raise ValueError("drefsr verifies pairs geometrically: sift.geometry must be homography or fundamental")


@dataclass
class _Pair:
    album: Album
    hr: int
    ref: int
    level: int
    crops: list  # [(hr_box, ref_box, n_inliers, overlap)]


def _grid(shape: tuple[int, int], size: int) -> list[tuple[int, int, int, int]]:
    h, w = shape
    return [(x, y, size, size) for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]


def _plan_pair(album: Album, i: int, j: int, cfg: Config, edges, seed: int, report: BuildReport) -> _Pair | None:
    s = album.score(i, j)
    if s.model is None or s.inliers < cfg.min_inliers:
        report.skip(f"{album.rel[i]} ~ {album.rel[j]}", "pair-unverified")
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
        report.skip(f"{album.rel[hr]} ~ {album.rel[ref]}", "pair-no-verified-crop")
        return None
    keep = sorted(rng.permutation(len(verified))[: cfg.crops_per_pair].tolist())
    cands = [(album.rel[k], float(album.score(hr, k).score))
             for k in range(len(album.images)) if k != hr and album.score(hr, k) is not None]
    level = assign(cands, edges, cfg.levels)[album.rel[ref]]
    return _Pair(album, hr, ref, level, [verified[k] for k in keep])


@RECIPES.register(RECIPE, summary=SUMMARY, config=Config)
def build(albums_dir: str | os.PathLike, out_dir: str | os.PathLike, config: Config | dict | None = None,
          seed: int = 0, jobs: int = 1, *, overwrite: bool = False, cache_dir: str | os.PathLike | None = None,
          progress: Callable | None = None) -> BuildReport:
    """Build a DRefSR-style dataset from ``albums_dir`` into ``out_dir``; return the build report."""
    cfg = as_config(Config, config)
    report = BuildReport(recipe=RECIPE, out=str(out_dir))
    albums = scan(albums_dir, cfg.sift, report, min_side=cfg.crop_size, jobs=jobs, cache_dir=cache_dir,
                  min_matches=cfg.min_matches, progress=progress)
    splits = assign_splits(albums, cfg.split, cfg.test_fraction, seed)
    plan: list[_Pair] = []
    for album in albums:
        edges = album_edges([float(s.score) for s in album.pairs.values()], cfg.levels)
        report.level_edges[album.name] = edges
        for (i, j) in sorted(album.pairs):
            pair = _plan_pair(album, i, j, cfg, edges, seed, report)
            if pair is not None:
                plan.append(pair)

    t0 = time.perf_counter()
    rows: list[dict] = []
    counters = {"train": 0, "test": 0}
    with DatasetWriter(out_dir, overwrite=overwrite) as tmp:
        for p in (progress(plan, len(plan), "writing") if progress else plan):
            al, split = p.album, splits[p.album.name]
            s = al.score(p.hr, p.ref)
            kp_hr, kp_ref = (s.keypoints_a, s.keypoints_b) if p.hr < p.ref else (s.keypoints_b, s.keypoints_a)
            hr_img, ref_img = load_rgb(al.images[p.hr].path), load_rgb(al.images[p.ref].path)
            for hr_box, ref_box, n_in, cover in p.crops:
                name = f"{counters[split]:06d}"
                counters[split] += 1
                hr_crop = cut(hr_img, hr_box)
                rows.append(dict(
                    sample_id=f"{split}_{name}", split=split, group=al.name, level=p.level,
                    hr=save(tmp, f"{split}/hr/{name}.png", hr_crop),
                    ref=save(tmp, f"{split}/ref/{name}.png", cut(ref_img, ref_box)),
                    lr=save(tmp, f"{split}/lr/{name}.png", make_lr(hr_crop, cfg.scale, cfg.lr_kernel)),
                    album=al.name, hr_source=al.rel[p.hr], ref_source=al.rel[p.ref], score=s.score,
                    keypoints_hr=kp_hr, keypoints_ref=kp_ref, matches=s.matches, inliers=s.inliers,
                    scale=cfg.scale, lr_kernel=cfg.lr_kernel, hr_x=hr_box[0], hr_y=hr_box[1],
                    ref_x=ref_box[0], ref_y=ref_box[1], crop_size=cfg.crop_size, crop_inliers=n_in,
                    overlap=cover))
        report.crops["written"] = len(rows)
        for r in rows:
            report.samples[(r["split"], r["level"])] += 1
        report.stage("writing", time.perf_counter() - t0)
        spec = {"name": Path(out_dir).name, "recipe": RECIPE, "seed": seed, "config": to_plain(cfg),
                "albums": {a.name: splits[a.name] for a in albums},
                "layout": {"train": "train/{hr,ref,lr}/NNNNNN.png", "test": "test/{hr,ref,lr}/NNNNNN.png"}}
        finish(tmp, rows, albums, spec, report, COLUMNS)
    return report
