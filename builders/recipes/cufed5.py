"""CUFED5-style datasets (SRNTT, CVPR 2019) from any photo albums.

Inside each album every image pair is scored by SIFT (``builders.sift``) and the pairs get levels
L1 (most similar) … LN (``builders.levels``).

- **test** albums give groups: the first images in name order whose candidate references cover
  every level become HRs (``groups_per_album`` of them); each group is one HR (long side ≤
  ``hr_max_side``, cropped to a multiple of the scale) and, per level, the highest-scoring
  reference of that level, written in the released layout ``test/NNN_0.png`` (HR) and
  ``test/NNN_k.png`` (level k), LR in ``test/lr/NNN_0.png``; one manifest row per (group, level).
- **train** albums give ``crop_size`` HR crops (centred on a random verified match) with the
  reference crop around the same content in the paired image (median of the verified matches inside
  the HR crop); pairs are drawn round-robin over the levels so every level is represented.

Which albums are test or train is ``split`` (``both`` = a seeded share ``test_fraction`` is test).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


from ..albums import Album, scan
from ..crops import clamp_box, cut, place_by_matches, shared_inliers
from core.resize import mod_crop

from ..degrade import KERNELS, make_lr
from ..levels import LevelConfig, album_edges, assign, pick_one_per_level
from ..manifest import DatasetWriter
from ..report import BuildReport
from ..sift import SiftParams
from . import RECIPES
from ._common import (PAIR_COLUMNS, as_config, assign_splits, finish, fit_long_side, load_rgb, rng_for, save,
                     to_plain)

RECIPE = "cufed5"
SUMMARY = "CUFED5-style: SIFT similarity levels per album; test groups NNN_0..NNN_N, 160x160 train crops"

COLUMNS = {**PAIR_COLUMNS,  # crop boxes: nullable where test rows have none
           "hr_x": "Int64", "hr_y": "Int64",
           "ref_x": "Int64", "ref_y": "Int64", "crop_size": "Int64", "crop_inliers": "Int64"}


@dataclass(frozen=True)
class Config:
    sift: SiftParams = field(default_factory=SiftParams)
    levels: LevelConfig = field(default_factory=lambda: LevelConfig(n=5, method="rank"))
    split: str = "test"             # test | train | both (albums, not images, are split)
    test_fraction: float = 0.2      # share of albums that become test when split == both
    groups_per_album: int = 1       # test groups (distinct HRs) per album
    hr_max_side: int = 500          # test HR and references: long side at most this
    ref_max_side: int = 500
    scale: int = 4
    lr_kernel: str = "pil-bicubic"  # pil-bicubic | matlab-bicubic
    crop_size: int = 160            # train crops; also the smallest usable image side
    train_pairs_per_album: int = 10
    crops_per_pair: int = 1
    min_matches: int = 1            # pairs with fewer ratio-test matches are never used

    def __post_init__(self):
        if self.lr_kernel not in KERNELS:
            raise ValueError(f"lr_kernel must be one of {KERNELS}")


def _oriented(album: Album, hr: int, ref: int):
    """Pair counts and verified points with the HR image first."""
    s = album.score(hr, ref)
    if hr < ref:
        return s, s.keypoints_a, s.keypoints_b, s.pts_a, s.pts_b
    return s, s.keypoints_b, s.keypoints_a, s.pts_b, s.pts_a


def _candidates(album: Album, hr: int) -> list[tuple[str, float]]:
    return [(album.rel[j], float(album.score(hr, j).score))
            for j in range(len(album.images)) if j != hr and album.score(hr, j) is not None]


def _test_groups(album: Album, cfg: Config, edges: list[float], report: BuildReport):
    """(hr index, {level: ref index}) for up to ``groups_per_album`` HRs of one album."""
    index = {rel: k for k, rel in enumerate(album.rel)}
    groups = []
    for hr in range(len(album.images)):
        if len(groups) == cfg.groups_per_album:
            break
        cands = _candidates(album, hr)
        if len(cands) < cfg.levels.n:
            report.skip(album.rel[hr], "hr-too-few-references")
            continue
        chosen, missing = pick_one_per_level(cands, assign(cands, edges, cfg.levels), cfg.levels.n)
        if missing:
            report.skip(album.rel[hr], "hr-missing-levels")
            continue
        groups.append((hr, {k: index[rel] for k, rel in chosen.items()}))
    if not groups:
        report.skip(album.name, "album-no-complete-group")
    return groups


def _write_group(tmp: Path, gid: int, album: Album, hr: int, refs: dict[int, int], cfg: Config) -> list[dict]:
    name = f"{gid:03d}"
    hr_img = mod_crop(fit_long_side(load_rgb(album.images[hr].path), cfg.hr_max_side), cfg.scale)
    hr_rel = save(tmp, f"test/{name}_0.png", hr_img)
    lr_rel = save(tmp, f"test/lr/{name}_0.png", make_lr(hr_img, cfg.scale, cfg.lr_kernel))
    rows = []
    for level, ref in refs.items():
        ref_img = fit_long_side(load_rgb(album.images[ref].path), cfg.ref_max_side)
        s, kp_hr, kp_ref, _, _ = _oriented(album, hr, ref)
        rows.append(dict(
            sample_id=f"{name}_{level}", split="test", group=name, level=level, hr=hr_rel,
            ref=save(tmp, f"test/{name}_{level}.png", ref_img), lr=lr_rel, album=album.name,
            hr_source=album.rel[hr], ref_source=album.rel[ref], score=s.score, keypoints_hr=kp_hr,
            keypoints_ref=kp_ref, matches=s.matches, inliers=s.inliers, scale=cfg.scale,
            lr_kernel=cfg.lr_kernel))
    return rows


def _train_pairs(album: Album, cfg: Config, edges: list[float], seed: int) -> list[tuple[int, int, int]]:
    """(hr, ref, level) pairs drawn round-robin over the levels, seeded per album."""
    rng = rng_for(seed, "cufed5-train", album.name)
    by_level: dict[int, list[tuple[int, int]]] = {}
    for (i, j) in sorted(album.pairs):
        hr, ref = (i, j) if rng.random() < 0.5 else (j, i)
        level = assign(_candidates(album, hr), edges, cfg.levels)[album.rel[ref]]
        by_level.setdefault(level, []).append((hr, ref))
    queues = {lv: [pairs[k] for k in rng.permutation(len(pairs))] for lv, pairs in sorted(by_level.items())}
    out: list[tuple[int, int, int]] = []
    while len(out) < cfg.train_pairs_per_album and any(queues.values()):
        for lv, q in queues.items():
            if q and len(out) < cfg.train_pairs_per_album:
                out.append((*q.pop(0), lv))
    return out


def _write_train(tmp: Path, start: int, album: Album, hr: int, ref: int, level: int, cfg: Config,
                 seed: int, report: BuildReport) -> list[dict]:
    s, kp_hr, kp_ref, pts_hr, pts_ref = _oriented(album, hr, ref)
    hr_img, ref_img = load_rgb(album.images[hr].path), load_rgb(album.images[ref].path)
    rng = rng_for(seed, "cufed5-crop", album.rel[hr], album.rel[ref])
    rows = []
    for c in range(cfg.crops_per_pair):
        report.crops["candidates"] += 1
        if len(pts_hr):
            cx, cy = pts_hr[rng.integers(len(pts_hr))]
        else:
            cx, cy = rng.uniform(0, hr_img.shape[1]), rng.uniform(0, hr_img.shape[0])
        hr_box = clamp_box(float(cx), float(cy), cfg.crop_size, hr_img.shape[:2])
        ref_box = place_by_matches(pts_hr, pts_ref, hr_box, ref_img.shape[:2], cfg.crop_size)
        if ref_box is None:   # no verified match inside: same relative position in the reference
            rx = (hr_box[0] + cfg.crop_size / 2) * ref_img.shape[1] / hr_img.shape[1]
            ry = (hr_box[1] + cfg.crop_size / 2) * ref_img.shape[0] / hr_img.shape[0]
            ref_box = clamp_box(rx, ry, cfg.crop_size, ref_img.shape[:2])
        n_in = shared_inliers(pts_hr, pts_ref, hr_box, ref_box)
        report.crops["verified"] += int(n_in > 0)
        name = f"{start + c:06d}"
        hr_crop = cut(hr_img, hr_box)
        rows.append(dict(
            sample_id=f"train_{name}", split="train", group=album.name, level=level,
            hr=save(tmp, f"train/hr/{name}.png", hr_crop),
            ref=save(tmp, f"train/ref/{name}.png", cut(ref_img, ref_box)),
            lr=save(tmp, f"train/lr/{name}.png", make_lr(hr_crop, cfg.scale, cfg.lr_kernel)),
            album=album.name, hr_source=album.rel[hr], ref_source=album.rel[ref], score=s.score,
            keypoints_hr=kp_hr, keypoints_ref=kp_ref, matches=s.matches, inliers=s.inliers,
            scale=cfg.scale, lr_kernel=cfg.lr_kernel, hr_x=hr_box[0], hr_y=hr_box[1],
            ref_x=ref_box[0], ref_y=ref_box[1], crop_size=cfg.crop_size, crop_inliers=n_in))
    return rows


@RECIPES.register(RECIPE, summary=SUMMARY, config=Config)
def build(albums_dir: str | os.PathLike, out_dir: str | os.PathLike, config: Config | dict | None = None,
          seed: int = 0, jobs: int = 1, *, overwrite: bool = False, cache_dir: str | os.PathLike | None = None,
          progress: Callable | None = None) -> BuildReport:
    """Build a CUFED5-style dataset from ``albums_dir`` into ``out_dir``; return the build report.

    ``config`` is a :class:`Config` or a dict of its fields (nested dicts for ``sift``/``levels``).
    The manifest depends only on the inputs, the config and the seed (not on ``jobs``).
    """
    cfg = as_config(Config, config)
    report = BuildReport(recipe=RECIPE, out=str(out_dir))
    albums = scan(albums_dir, cfg.sift, report, min_side=cfg.crop_size, jobs=jobs, cache_dir=cache_dir,
                  min_matches=cfg.min_matches, progress=progress)
    splits = assign_splits(albums, cfg.split, cfg.test_fraction, seed)
    plan = []
    for album in albums:
        edges = album_edges([float(s.score) for s in album.pairs.values()], cfg.levels)
        report.level_edges[album.name] = edges
        if splits[album.name] == "test":
            plan += [("test", album, g) for g in _test_groups(album, cfg, edges, report)]
        else:
            plan += [("train", album, p) for p in _train_pairs(album, cfg, edges, seed)]

    t0 = time.perf_counter()
    rows: list[dict] = []
    with DatasetWriter(out_dir, overwrite=overwrite) as tmp:
        gid = n_train = 0
        items = progress(plan, len(plan), "writing") if progress else plan
        for split, album, item in items:
            if split == "test":
                rows += _write_group(tmp, gid, album, *item, cfg)
                gid += 1
            else:
                new = _write_train(tmp, n_train, album, *item, cfg, seed, report)
                n_train += len(new)
                rows += new
        for r in rows:
            report.samples[(r["split"], r["level"])] += 1
        report.stage("writing", time.perf_counter() - t0)
        spec = {"name": Path(out_dir).name, "recipe": RECIPE, "seed": seed, "config": to_plain(cfg),
                "albums": {a.name: splits[a.name] for a in albums},
                "layout": {"test": "test/NNN_0.png HR, test/NNN_k.png level-k reference, test/lr/NNN_0.png LR",
                           "train": "train/{hr,ref,lr}/NNNNNN.png"}}
        finish(tmp, rows, albums, spec, report, COLUMNS)
    return report
