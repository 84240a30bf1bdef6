"""Score a folder of SR images already made (by ``--save-sr``, or published by a model's authors).

    python -m benchmark.score --sr DIR --dataset NAME_OR_DIR [--name MODEL] [--protocol P] [--metrics ...]

``DIR`` holds ``<sample_id>.png`` for the dataset's samples (what ``--save-sr`` writes under
``<run>/sr/<model>/<dataset>/<variant>/``). Each image is scored against the dataset's HR exactly as a
model's output is: the protocol's HR preparation (mod-crop or padding), border crop and Y conversion.
The rows go to ``<out>/results.parquet`` like a run's, with ``weights = precomputed``; the model name
is the folder's name unless ``--name`` says otherwise. Images are taken as already quantised
(uint8), so drift protocols are not applied. A missing image is a failed row naming the file.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.score", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sr", required=True, help="folder of SR images named <sample_id>.png")
    p.add_argument("--dataset", required=True, help="dataset name (datasets/*.yaml) or dataset folder")
    p.add_argument("--name", help="model name in the rows (default: the --sr folder's name)")
    p.add_argument("--variant", default="clean", help="variant the images were made with (recorded; default clean)")
    p.add_argument("--protocol", default="refsr-standard", help="protocol preset or YAML file")
    p.add_argument("--metrics", default="psnr_y,ssim_y,psnr_rgb,lpips", help="comma-separated metrics")
    p.add_argument("--levels", default="all", help="comma-separated reference levels or 'all'")
    p.add_argument("--scale", type=int, default=4, help="SR scale of the images (default 4)")
    p.add_argument("--out", help="run folder for results.parquet (default: <sr>/../score-<name>)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (metrics only)")
    args = p.parse_args(argv)

    from .device import select_device
    from .evaluation import Evaluator, RunConfig, precomputed_model
    from .suite import SuiteError, jobs, validate

    folder = Path(args.sr)
    if not folder.is_dir():
        print(f"error: --sr {folder} is not a folder", file=sys.stderr)
        return 2
    name = args.name or folder.name
    levels = args.levels if args.levels == "all" else [int(x) for x in args.levels.split(",")]
    try:
        suite = validate({"name": "score", "models": [], "datasets": [args.dataset], "levels": levels,
                          "variants": [args.variant], "protocol": args.protocol,
                          "metrics": [m.strip() for m in args.metrics.split(",") if m.strip()]},
                         source="command line")
    except (SuiteError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    suite = replace(suite, models=(name,))
    out = Path(args.out) if args.out else folder.parent / f"score-{name}"
    evaluator = Evaluator(RunConfig(suite=suite, device=select_device(args.device), run_dir=out),
                          models={name: precomputed_model(folder, name, args.scale)})
    df = evaluator.run(jobs(suite))
    failed = int((df["status"] == "failed").sum())
    print(df[df["status"] == "ok"].groupby("metric")["value"].mean().to_string())
    print(f"results: {out / 'results.parquet'} ({len(df)} rows, {failed} failed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
