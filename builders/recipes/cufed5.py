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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

from core.resize import mod_crop

from ..albums import Album
from ..config import as_config, option
from ..crops import clamp_box, cut, place_by_matches, shared_inliers
from ..degrade import make_lr
from ..levels import LevelConfig, album_edges, assign, pick_one_per_level
from ..report import BuildReport
from ..writer import Array, Row, Written
from . import RECIPES
from ._common import PAIR_COLUMNS, AlbumConfig, build_recipe, fit_long_side, load_rgb, rng_for

SUMMARY = "CUFED5-style: SIFT similarity levels per album; test groups NNN_0..NNN_N, 160x160 train crops"

COLUMNS = {**PAIR_COLUMNS,  # crop boxes: nullable where test rows have none
           "hr_x": "Int64", "hr_y": "Int64",
           "ref_x": "Int64", "ref_y": "Int64", "crop_size": "Int64", "crop_inliers": "Int64"}


@dataclass(frozen=True)
class Config(AlbumConfig):
    name: ClassVar[str] = "cufed5"
    version: ClassVar[str] = "1.0"

    levels: LevelConfig = option(help="levels", factory=lambda: LevelConfig(n=5, method="rank"))
    groups_per_album: int = option(1, "test groups (distinct HRs) per album")
    min_l1_score: int = option(30, "an HR forms a group only if its most similar reference scores at least "
                                   "this (unrelated photos reach 5-8 inliers; real L1 views hundreds)")
    hr_max_side: int = option(500, "test HR: long side at most this")
    ref_max_side: int = option(500, "test references: long side at most this")
    train_pairs_per_album: int = option(10, "train pairs drawn per album")
    crops_per_pair: int = option(1, "crops written per image pair")


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
            report.skip("hr-too-few-references", album.rel[hr])
            continue
        if max(score for _, score in cands) < cfg.min_l1_score:
            report.skip("hr-no-related-reference", album.rel[hr])
            continue
        chosen, missing = pick_one_per_level(cands, assign(cands, edges, cfg.levels), cfg.levels.n)
        if missing:
            report.skip("hr-missing-levels", album.rel[hr])
            continue
        groups.append((hr, {k: index[rel] for k, rel in chosen.items()}))
    if not groups:
        report.skip("album-no-complete-group", album.name)
    return groups


def _group_rows(gid: int, album: Album, hr: int, refs: dict[int, int], cfg: Config) -> Iterator[Row]:
    name = f"{gid:03d}"
    hr_img = mod_crop(fit_long_side(load_rgb(album.images[hr].path), cfg.hr_max_side), cfg.scale)
    hr_rel, lr_rel = f"test/{name}_0.png", f"test/lr/{name}_0.png"
    shared = {hr_rel: Array(hr_img), lr_rel: Array(make_lr(hr_img, cfg.scale, cfg.lr_kernel))}
    for level, ref in refs.items():
        ref_img = fit_long_side(load_rgb(album.images[ref].path), cfg.ref_max_side)
        ref_rel = f"test/{name}_{level}.png"
        s, kp_hr, kp_ref, _, _ = _oriented(album, hr, ref)
        yield Row(dict(
            sample_id=f"{name}_{level}", split="test", group=name, level=level, hr=hr_rel,
            ref=ref_rel, lr=lr_rel, album=album.name,
            hr_source=album.rel[hr], ref_source=album.rel[ref], score=s.score, keypoints_hr=kp_hr,
            keypoints_ref=kp_ref, matches=s.matches, inliers=s.inliers, scale=cfg.scale,
            lr_kernel=cfg.lr_kernel), {**shared, ref_rel: Array(ref_img)})
        shared = {hr_rel: Written(), lr_rel: Written()}


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


def _train_rows(start: int, album: Album, hr: int, ref: int, level: int, cfg: Config,
                seed: int, report: BuildReport) -> Iterator[Row]:
    s, kp_hr, kp_ref, pts_hr, pts_ref = _oriented(album, hr, ref)
    hr_img, ref_img = load_rgb(album.images[hr].path), load_rgb(album.images[ref].path)
    rng = rng_for(seed, "cufed5-crop", album.rel[hr], album.rel[ref])
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
        files = {f"train/hr/{name}.png": Array(hr_crop), f"train/ref/{name}.png": Array(cut(ref_img, ref_box)),
                 f"train/lr/{name}.png": Array(make_lr(hr_crop, cfg.scale, cfg.lr_kernel))}
        yield Row(dict(
            sample_id=f"train_{name}", split="train", group=album.name, level=level,
            hr=f"train/hr/{name}.png", ref=f"train/ref/{name}.png", lr=f"train/lr/{name}.png",
            album=album.name, hr_source=album.rel[hr], ref_source=album.rel[ref], score=s.score,
            keypoints_hr=kp_hr, keypoints_ref=kp_ref, matches=s.matches, inliers=s.inliers,
            scale=cfg.scale, lr_kernel=cfg.lr_kernel, hr_x=hr_box[0], hr_y=hr_box[1],
            ref_x=ref_box[0], ref_y=ref_box[1], crop_size=cfg.crop_size, crop_inliers=n_in), files)


def plan(albums: list[Album], splits: dict[str, str], cfg: Config, seed: int, report: BuildReport) -> list:
    """What to write: ("test", album, (hr, {level: ref})) groups and ("train", album, (hr, ref, level)) pairs."""
    items = []
    for album in albums:
        edges = album_edges([float(s.score) for s in album.pairs.values()], cfg.levels)
        report.level_edges[album.name] = edges
        if splits[album.name] == "test":
            items += [("test", album, g) for g in _test_groups(album, cfg, edges, report)]
        else:
            items += [("train", album, p) for p in _train_pairs(album, cfg, edges, seed)]
    return items


def generate(items, cfg: Config, seed: int, report: BuildReport) -> Iterator[Row]:
    """The rows of the planned items, in order: test groups numbered 000.., train crops 000000.."""
    gid = n_train = 0
    for split, album, item in items:
        if split == "test":
            yield from _group_rows(gid, album, *item, cfg)
            gid += 1
        else:
            for row in _train_rows(n_train, album, *item, cfg, seed, report):
                n_train += 1
                yield row


@RECIPES.register(Config.name, summary=SUMMARY, config=Config)
def build(albums_dir: str | os.PathLike, out_dir: str | os.PathLike, config: Config | dict | None = None,
          seed: int = 0, jobs: int = 1, *, overwrite: bool = False, cache_dir: str | os.PathLike | None = None,
          progress: Callable | None = None, shard: tuple[int, int] | None = None,
          merge_shards: int | None = None, device: str | None = None) -> BuildReport:
    """Build a CUFED5-style dataset from ``albums_dir`` into ``out_dir``; return the build report.

    ``config`` is a :class:`Config` or a dict of its fields (nested dicts for ``sift``/``levels``).
    The manifest depends only on the inputs, the config and the seed (not on ``jobs`` or ``device``).
    """
    return build_recipe(as_config(Config, config), plan, generate, COLUMNS, albums_dir, out_dir, seed, jobs,
                        overwrite=overwrite, cache_dir=cache_dir, progress=progress, shard=shard,
                        merge_shards=merge_shards, device=device)
