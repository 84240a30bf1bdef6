"""Build a CUFED5- or DRefSR-style dataset from photo albums.

  python -m builders.build --recipe cufed5 --albums DIR --out DIR --seed 0 --jobs 8

ALBUMS holds one sub-folder per album (photos of one event or scene); a folder of images with no
sub-folders is one album. Every image's SIFT features are computed once (cached with --cache), every
pair inside an album is scored by verified SIFT matches, pairs get similarity levels L1 (most
similar) .. LN, and the recipe writes image files + manifest.parquet + pairs.parquet + spec.yaml +
imagefolder metadata.jsonl. The same inputs, options and seed give a byte-identical manifest,
whatever --jobs is. Unusable inputs are skipped with a counted reason in the printed report.
"""
from __future__ import annotations

import argparse
import sys

import yaml
from tqdm import tqdm

from ._cli import report_or_error
from .recipes import RECIPES
from .sift import default_jobs

EPILOG = """\
recipes:
  cufed5  test groups in the released CUFED5 layout: test/NNN_0.png = HR (long side <= 500),
          test/NNN_k.png = reference of level k (1 = most similar), test/lr/NNN_0.png = LR;
          train (--split train|both): 160x160 HR crops with the reference crop from the paired image.
  drefsr  pairs kept only if RANSAC-verified (--min-inliers); several crops per pair whose
          reference crop is placed on the HR crop's content; the report counts verified crops.

levels (--level-method):
  rank        per HR, candidate references sorted by score, split into N equal rank bins (default)
  quantiles   per album, cut points at the score quantiles of all its pairs
  thresholds  fixed match counts, e.g. --thresholds 200 100 50 20 for 5 levels

examples:
  python -m builders.build --recipe cufed5 --albums ~/albums --out data/mycufed5 --seed 0
  python -m builders.build --recipe cufed5 --albums ~/albums --out data/c5 --split both --levels 4
  python -m builders.build --recipe drefsr --albums ~/albums --out data/dref --jobs 16 --cache ~/.cache/sift
  python -m builders.build --recipe cufed5 --albums A --out B --config my.yaml   (any Config field)

Load the result: builders.manifest.Dataset.open(OUT), pandas.read_parquet(OUT/manifest.parquet),
or datasets.load_dataset("imagefolder", data_dir=OUT).
"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m builders.build", description=__doc__.split("\n\n")[0],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", required=True, choices=RECIPES.list(), help="dataset style to build")
    p.add_argument("--albums", required=True, help="folder of album folders (photos of one event/scene each)")
    p.add_argument("--out", required=True, help="dataset folder to create (written atomically)")
    p.add_argument("--seed", type=int, default=0, help="seed for album split, pair and crop choices (default 0)")
    p.add_argument("--jobs", type=int, default=default_jobs(),
                   help="worker processes for SIFT (default: all cores); does not change the result")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--cache", help="folder for cached SIFT features (keyed by file sha256 + SIFT options)")
    p.add_argument("--config", help="YAML file of recipe options (Config fields; nested sift:, levels:)")
    g = p.add_argument_group("levels and splits")
    g.add_argument("--levels", type=int, help="number of similarity levels N (cufed5 default 5; the paper used 4)")
    g.add_argument("--level-method", choices=["rank", "quantiles", "thresholds"], help="how scores become levels")
    g.add_argument("--thresholds", type=float, nargs="+", help="N-1 decreasing match counts (--level-method thresholds)")
    g.add_argument("--split", choices=["test", "train", "both"], help="which splits to build (albums are split)")
    g.add_argument("--test-fraction", type=float, help="share of albums used for test with --split both")
    g.add_argument("--groups-per-album", type=int, help="cufed5: test groups (HRs) per album (default 1)")
    g = p.add_argument_group("images")
    g.add_argument("--scale", type=int, help="SR scale (default 4)")
    g.add_argument("--lr-kernel", choices=["pil-bicubic", "matlab-bicubic"], help="LR downscaling kernel")
    g.add_argument("--crop-size", type=int, help="HR crop side for train/drefsr crops (default 160)")
    g.add_argument("--crops-per-pair", type=int, help="crops written per image pair")
    g.add_argument("--min-inliers", type=int, help="drefsr: RANSAC inliers a pair needs to count as verified")
    g = p.add_argument_group("SIFT")
    g.add_argument("--geometry", choices=["homography", "fundamental", "none"], help="RANSAC model verifying matches")
    g.add_argument("--score", choices=["inliers", "matches"], help="similarity = verified inliers or ratio-test matches")
    g.add_argument("--ratio", type=float, help="Lowe ratio test (default 0.8)")
    g.add_argument("--nfeatures", type=int, help="SIFT keypoints kept per image (default 2000, 0 = all)")
    g.add_argument("--max-side", type=int, help="images are downscaled to this long side for SIFT (default 1024)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def config_dict(args: argparse.Namespace) -> dict:
    """Recipe config from --config YAML overlaid with the explicit command-line options."""
    cfg = yaml.safe_load(open(args.config)) if args.config else {}
    cfg = dict(cfg or {})
    top = {"split": args.split, "test_fraction": args.test_fraction, "groups_per_album": args.groups_per_album,
           "scale": args.scale, "lr_kernel": args.lr_kernel, "crop_size": args.crop_size,
           "crops_per_pair": args.crops_per_pair, "min_inliers": args.min_inliers}
    levels = {"n": args.levels, "method": args.level_method, "thresholds": args.thresholds}
    sift = {"geometry": args.geometry, "score": args.score, "ratio": args.ratio,
            "nfeatures": args.nfeatures, "max_side": args.max_side}
    cfg.update({k: v for k, v in top.items() if v is not None})
    for name, section in (("levels", levels), ("sift", sift)):
        given = {k: v for k, v in section.items() if v is not None}
        if given:
            cfg[name] = {**(cfg.get(name) or {}), **given}
    if "thresholds" in cfg.get("levels", {}) and "method" not in cfg["levels"]:
        cfg["levels"]["method"] = "thresholds"
    return cfg


def _bar(it, total, desc):
    return tqdm(it, total=total, desc=desc, unit="it", leave=False, file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    build = RECIPES.get(args.recipe)
    return report_or_error(lambda: build(args.albums, args.out, config_dict(args), seed=args.seed,
                                         jobs=max(1, args.jobs), overwrite=args.overwrite, cache_dir=args.cache,
                                         progress=None if args.quiet else _bar))


if __name__ == "__main__":
    sys.exit(main())
