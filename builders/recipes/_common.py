"""Pieces every album recipe shares: album split assignment, seeded generators, the build around plan/generate."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from core.seeding import keyed_rng

from .. import shards
from ..albums import NEAR_DUPLICATE_PSNR, Album, pairs_table, scan
from ..config import option, to_plain
from ..degrade import KERNELS
from ..images import read_rgb
from ..levels import LevelConfig
from ..report import BuildReport
from ..sift import SiftParams
from ..writer import check_target, make_spec, write_dataset

SPLITS = ("test", "train", "both")


#: Manifest columns (and dtypes) every pair-based recipe writes; recipes add their crop columns.
PAIR_COLUMNS = {
    "sample_id": "string", "split": "string", "group": "string", "level": "int64", "hr": "string",
    "ref": "string", "lr": "string", "album": "string", "hr_source": "string", "ref_source": "string",
    "score": "int64", "keypoints_hr": "int64", "keypoints_ref": "int64", "matches": "int64",
    "inliers": "int64", "scale": "int64", "lr_kernel": "string",
}

@dataclass(frozen=True)
class AlbumConfig:
    """The options every album recipe has; a recipe's ``Config`` subclasses it, sets ``name`` and
    ``version`` and adds (or re-defaults) its own fields."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = ""

    sift: SiftParams = option(help="SIFT", factory=SiftParams)
    levels: LevelConfig = option(help="levels", factory=LevelConfig)
    split: str = option("test", "which splits to build (albums, not images, are split)", choices=SPLITS)
    test_fraction: float = option(0.2, "share of albums used for test with --split both")
    scale: int = option(4, "SR scale")
    lr_kernel: str = option("pil-bicubic", "LR downscaling kernel", choices=KERNELS)
    crop_size: int = option(160, "HR crop side of train/drefsr crops; also the smallest usable image side")
    min_matches: int = option(1, "pairs with fewer ratio-test matches are never used")
    near_duplicate_psnr: float = option(NEAR_DUPLICATE_PSNR, "thumbnail PSNR (dB) from which two images of an "
                                        "album are copies of one photo; the later one is skipped")

    def __post_init__(self):
        if self.lr_kernel not in KERNELS:
            raise ValueError(f"lr_kernel must be one of {KERNELS}")
        for name, ok, rule in (("scale", self.scale >= 1, ">= 1"), ("crop_size", self.crop_size >= 16, ">= 16"),
                               ("test_fraction", 0 < self.test_fraction < 1, "in (0, 1)"),
                               ("min_matches", self.min_matches >= 0, ">= 0")):
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}")
        if self.crop_size % self.scale:
            raise ValueError(f"crop_size {self.crop_size} must be a multiple of the scale {self.scale}")


def assign_splits(albums: list[Album], split: str, test_fraction: float, seed: int) -> dict[str, str]:
    """Album name -> 'test' | 'train'. For 'both', a seeded, order-independent share goes to test."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split != "both":
        return {a.name: split for a in albums}
    ranked = sorted(albums, key=lambda a: hashlib.sha256(f"{seed}:{a.name}".encode()).hexdigest())
    n_test = min(len(ranked) - 1, max(1, round(test_fraction * len(ranked)))) if len(ranked) > 1 else len(ranked)
    return {a.name: ("test" if k < n_test else "train") for k, a in enumerate(ranked)}


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """A generator that depends only on the seed and the keys (not on processing order)."""
    return keyed_rng(seed, *keys)


@lru_cache(maxsize=8)
def load_rgb(path: str) -> np.ndarray:
    rgb, _ = read_rgb(path)
    rgb.setflags(write=False)
    return rgb


def fit_long_side(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return img
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def build_recipe(cfg, plan: Callable, generate: Callable, columns: dict[str, str], albums_dir, out_dir, seed: int,
                 jobs: int, *, overwrite: bool, cache_dir, progress: Callable | None,
                 shard: tuple[int, int] | None = None, merge_shards: int | None = None,
                 device: str | None = None) -> BuildReport:
    """What every album recipe does around its own ``plan`` and ``generate``.

    Scan the albums (features, pair scores), split them, ``plan(albums, splits, cfg, seed, report)``
    what to write (a list: HF ``_split_generators``), then write the rows of
    ``generate(items, cfg, seed, report)`` (HF ``_generate_examples``) through the shared writer,
    with ``pairs.parquet`` beside the manifest. ``shard=(k, n)``: only scan shard k's albums and
    write its part; ``merge_shards=n``: take the scan from the n parts (``builders.shards``).
    """
    report = BuildReport(recipe=cfg.name, out=str(out_dir))
    scan_options = dict(min_side=cfg.crop_size, jobs=jobs, cache_dir=cache_dir, min_matches=cfg.min_matches,
                        progress=progress, near_duplicate_psnr=cfg.near_duplicate_psnr, device=device)
    header = {"recipe": cfg.name, "sift": to_plain(cfg.sift), "min_side": cfg.crop_size,
              "min_matches": cfg.min_matches, "near_duplicate_psnr": cfg.near_duplicate_psnr}
    if shard is not None:
        shards.run_shard(albums_dir, out_dir, shard, cfg.sift, header, report, **scan_options)
        report.finish()
        return report
    check_target(out_dir, overwrite)
    if merge_shards:
        albums = shards.merge(albums_dir, out_dir, merge_shards, cfg.sift, header, report, **scan_options)
    else:
        albums = scan(albums_dir, cfg.sift, report, **scan_options)
    splits = assign_splits(albums, cfg.split, cfg.test_fraction, seed)
    items = plan(albums, splits, cfg, seed, report)
    rows = generate(progress(items, len(items), "writing") if progress else items, cfg, seed, report)
    used = sorted((rel, rec.sha256) for al in albums for rel, rec in zip(al.rel, al.images))
    inputs = {"images_used": len(used),
              "sha256": hashlib.sha256("\n".join(f"{r} {h}" for r, h in used).encode()).hexdigest(),
              "albums": {a.name: splits[a.name] for a in albums}}
    spec = make_spec(name=Path(out_dir).name, kind="recipe", created_by=cfg.name, version=cfg.version,
                     config=to_plain(cfg), seed=seed, source=str(Path(albums_dir).resolve()), inputs=inputs)
    write_dataset(out_dir, rows, spec, report, columns=columns, overwrite=overwrite,
                  tables={"pairs.parquet": lambda: pairs_table(albums)})
    return report
