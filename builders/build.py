"""Build a CUFED5- or DRefSR-style dataset from photo albums.

  python -m builders.build --recipe cufed5 --albums DIR --out DIR --seed 0 --jobs 8

ALBUMS holds one sub-folder per album (photos of one event or scene); a folder of images with no
sub-folders is one album. Every image's SIFT features are computed once (cached with --cache), every
pair inside an album is scored by verified SIFT matches, pairs get similarity levels L1 (most
similar) .. LN, and the recipe writes image files + manifest.parquet + pairs.parquet + spec.yaml +
imagefolder metadata (<split>/metadata.parquet). The same inputs, options and seed give a byte-identical manifest,
whatever --jobs is. Unusable inputs are skipped with a counted reason in the printed report.
"""
from __future__ import annotations

import argparse
import re
import sys

from tqdm import tqdm

from core.yaml_io import load_yaml
from ._cli import at_least, report_or_error
from .config import add_config_options, given_options
from .recipes import RECIPES
from .shards import parse_shard
from .sift import default_jobs

LEVELS_HELP = """\
levels (--level-method):
  rank        per HR, candidate references sorted by score, split into N equal rank bins
  quantiles   per album, cut points at the score quantiles of all its pairs
  thresholds  fixed match counts, e.g. --thresholds 200 100 50 20 for 5 levels

a build sharded over N machines (--shard / --merge-shards):
  each album goes to shard sha256(album name) mod N. Run, on any machines sharing ALBUMS and the
  folder of OUT (K = 0 .. N-1; --cache on shared storage lets the merge reuse features):
    python -m builders.build --recipe cufed5 --albums A --out D --shard K/N
  Each writes D.shards/part-K-of-N.npz (the pair scores and verified matches of its albums: the
  expensive part). Then, once, with the same options:
    python -m builders.build --recipe cufed5 --albums A --out D --merge-shards N
  writes D exactly as an unsharded build would (same manifest rows, files and hashes).

examples:
  python -m builders.build --recipe cufed5 --albums ~/albums --out data/mycufed5 --seed 0
  python -m builders.build --recipe cufed5 --albums ~/albums --out data/c5 --split both --levels 4
  python -m builders.build --recipe drefsr --albums ~/albums --out data/dref --jobs 16 --cache ~/.cache/sift
  python -m builders.build --recipe cufed5 --albums A --out B --config my.yaml   (any Config field)

Load the result: builders.manifest.Dataset.open(OUT), pandas.read_parquet(OUT/manifest.parquet),
or datasets.load_dataset("imagefolder", data_dir=OUT).
"""


def epilog() -> str:
    recipes = "\n".join(f"  {name:<8}{RECIPES.info(name)['summary']}" for name in RECIPES.list())
    return f"recipes:\n{recipes}\n\n{LEVELS_HELP}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m builders.build", description=__doc__.split("\n\n")[0],
                                epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", required=True, choices=RECIPES.list(), help="dataset style to build")
    p.add_argument("--albums", required=True, help="folder of album folders (photos of one event/scene each)")
    p.add_argument("--out", required=True, help="dataset folder to create (written atomically)")
    p.add_argument("--seed", type=int, default=0, help="seed for album split, pair and crop choices (default 0)")
    p.add_argument("--jobs", type=int, default=default_jobs(),
                   help="worker processes for SIFT (default: all cores); does not change the result")
    p.add_argument("--device", default="cpu", metavar="cpu|cuda[:N]",
                   help="where descriptor matching runs (default cpu; cuda: every pair's ratio test on that GPU, "
                        "then RANSAC on --jobs CPU workers); does not change the result")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--cache", help="folder for cached SIFT features (keyed by file sha256 + SIFT options)")
    p.add_argument("--config", help="YAML file of recipe options (Config fields; nested sift:, levels:)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    sharding = p.add_mutually_exclusive_group()
    sharding.add_argument("--shard", metavar="K/N", help="scan only shard K (0..N-1) of N and write its part "
                                                       "into OUT.shards/ (see below)")
    sharding.add_argument("--merge-shards", type=int, metavar="N", help="write OUT from the N parts of a sharded scan")
    add_config_options(p, [RECIPES.info(name)["config"] for name in RECIPES.list()])
    return p.parse_args(argv)


def config_dict(args: argparse.Namespace) -> dict:
    """Recipe config from --config YAML overlaid with the explicit command-line options."""
    cfg = load_yaml(open(args.config)) if args.config else {}
    cfg = dict(cfg or {})
    for name, value in given_options(args).items():
        cfg[name] = {**(cfg.get(name) or {}), **value} if isinstance(value, dict) else value
    if "thresholds" in cfg.get("levels", {}) and "method" not in cfg["levels"]:
        cfg["levels"]["method"] = "thresholds"
    return cfg


def _bar(it, total, desc):
    return tqdm(it, total=total, desc=desc, unit="it", leave=False, file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    build = RECIPES.get(args.recipe)
    return report_or_error(lambda: at_least(args, jobs=1, seed=0) or
                           build(args.albums, args.out, config_dict(args), seed=args.seed, jobs=args.jobs,
                                 overwrite=args.overwrite, cache_dir=args.cache,
                                 progress=None if args.quiet else _bar,
                                 shard=parse_shard(args.shard) if args.shard else None,
                                 merge_shards=args.merge_shards, device=matching_device(args.device)))


def matching_device(name: str) -> str | None:
    """``None`` for the CPU (its exact int8 path), else the checked CUDA device."""
    if name == "cpu":
        return None
    if not re.fullmatch(r"cuda(:\d+)?", name):
        raise ValueError(f"--device {name!r}: expected cpu, cuda or cuda:N")
    import torch

    index = int(name.split(":")[1]) if ":" in name else 0
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: no such CUDA device here ({torch.cuda.device_count()} visible)")
    return name


if __name__ == "__main__":
    sys.exit(main())
