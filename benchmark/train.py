"""Train a zoo model on any built or imported split; write checkpoints and official-format weights.

  python -m benchmark.train --model masa.rec --dataset data/c5 --out runs/train/masa_rec
  torchrun --nproc-per-node 4 -m benchmark.train --model ttsr.rec --dataset data/c5 --out runs/train/ttsr_rec

The recipe (--recipe official = benchmark/recipes/<model>.yaml, or your YAML file) fixes losses,
optimiser, schedule, length, batch, crops and augmentations, each with its source. Re-running the
same command resumes from OUT/checkpoints/last.pt (a killed run loses at most the steps since the
last checkpoint). The final weights are written as OUT/<official file name> (e.g. masa_rec.pth)
with OUT/weights.json naming the run; score them with

  python -m benchmark.run --models masa.rec --weights OUT --datasets data/c5
"""
from __future__ import annotations

import argparse
import json
import sys

from core.yaml_io import load_yaml


def _kv(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item}: use KEY=VALUE (e.g. --set iterations=1000)")
        out[key] = load_yaml(value)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmark.train", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="zoo name[.tag], e.g. masa.rec, or a stage's recipe (c2_matching.teacher)")
    p.add_argument("--dataset", help="dataset folder with a train split (builders.build --split train|both)")
    p.add_argument("--out", help="run folder (checkpoints, log, weights); re-running resumes it")
    p.add_argument("--recipe", default="official", help="official (benchmark/recipes/<model>.yaml) or FILE.yaml")
    p.add_argument("--list-recipes", action="store_true", help="list the official recipes and exit")
    p.add_argument("--steps", type=int, help="train this many steps instead of the recipe's length")
    p.add_argument("--batch-size", type=int, help="global batch size (default: the recipe's)")
    p.add_argument("--crop-size", type=int, help="HR crop side (default: the recipe's)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override recipe fields, dotted keys, YAML values (e.g. optimizer.lr=2e-4 checkpoint_every=500)")
    p.add_argument("--model-kwargs", help="JSON architecture options (default: the official architecture)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (torchrun: one GPU per process)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="autocast dtype (fp32 default)")
    p.add_argument("--workers", type=int, help="loader processes (default 0 on CPU, 4 on GPU)")
    p.add_argument("--val-dataset", help="dataset folder whose test split validates (default: --dataset's test split)")
    p.add_argument("--val-every", type=int, help="validate every N steps (default: the recipe's; 0 = at the end)")
    p.add_argument("--val-limit", type=int, default=8, help="test groups per validation (default 8)")
    p.add_argument("--val-metrics", default="psnr_y,ssim_y", help="e.g. psnr_y,ssim_y,lpips")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--time-limit", type=float, help="minutes: then checkpoint, export and stop (re-run to continue)")
    p.add_argument("--bench-loader", action="store_true",
                   help="print the loader's crops/s against the model's steps/s and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from .training import RecipeError, TrainConfig, Trainer, list_recipes

    if args.list_recipes:
        from .training.recipe import load_recipe
        for name in list_recipes():
            r = load_recipe(name)
            print(f"{name:<14} {r.get('gpu_hours', '')}")
        return 0
    missing = [f"--{k}" for k in ("model", "dataset", "out") if not getattr(args, k)]
    if missing:
        print(f"error: {', '.join(missing)} required", file=sys.stderr)
        return 2
    overrides = _kv(args.set)
    for key, value in (("iterations", args.steps), ("batch_size", args.batch_size), ("crop_size", args.crop_size),
                       ("validate_every", args.val_every)):
        if value is not None:
            overrides[key] = value
    cfg = TrainConfig(model=args.model, dataset=args.dataset, out=args.out, recipe=args.recipe, overrides=overrides,
                      model_kwargs=json.loads(args.model_kwargs) if args.model_kwargs else None, seed=args.seed,
                      device=args.device, precision=args.precision, workers=args.workers,
                      val_dataset=args.val_dataset, val_limit=args.val_limit,
                      val_metrics=tuple(m for m in args.val_metrics.split(",") if m), log_every=args.log_every,
                      time_limit=args.time_limit * 60 if args.time_limit else None, progress=not args.quiet)
    try:
        trainer = Trainer(cfg)
        if args.bench_loader:
            from .training.bench import bench_loader
            bench_loader(trainer)
            return 0
        result = trainer.run()
    except (RecipeError, ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if trainer.dist.main:
        w = result.get("weights") or {}
        print(f"run {result['run_id']}: step {result['step']}/{trainer.total}"
              f"{' (resumed)' if result['resumed'] else ''}{' (stopped at the time limit)' if result.get('stopped_early') else ''}")
        if result.get("validation"):
            print("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in result["validation"].items()))
        for name, f in (w.get("files") or {}).items():
            print(f"weights: {trainer.out / name}  sha256 {f['sha256']}")
        print(f"score them: python -m benchmark.run --models {trainer.name} --weights {trainer.out} --datasets DATASET")
    return 0


if __name__ == "__main__":
    sys.exit(main())
