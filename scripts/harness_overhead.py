"""Harness overhead: a suite's evaluation wall time versus the same model forwards run alone.

    .venv/bin/python scripts/harness_overhead.py [--suite demo] [--models bicubic,texture_transfer] [--chunks 8]

For each model of the suite and each of ``--chunks`` slices of its images (the harness's own
``--shard K/N``), alternately and in this one process: (1) the harness evaluates the slice from
scratch in a temporary run folder (no profiles, no publishing; its ``eval_wall_s``: loading,
warm-up, decoding, protocol, variants, every metric, result writing); (2) forward-only: the same
images' inputs are made beforehand (not timed) and only ``model(lr, ref)`` is timed, after the
harness's own untimed warm-up (a 16-pixel corner of the first input). Everything the harness does
besides those forwards is the overhead; the ratio is summed harness wall time / summed forward-only
time. Alternating every few minutes keeps both sides under the same machine load (on a shared
machine it varies a lot); each slice pays the harness's per-run costs again, so more chunks only
make the harness look slower.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmark import run  # noqa: E402
from benchmark.device import select_device  # noqa: E402
from benchmark.evaluation import (Evaluator, RunConfig, _build_variant, fit_size, select_samples, to_tensor,  # noqa: E402
                                  warm_up)
from benchmark.results import ResultStore  # noqa: E402
from benchmark.suite import load_suite  # noqa: E402
from builders.variants import is_baseline  # noqa: E402


def harness(suite: str, model: str, out: Path, chunk: str) -> tuple[float, float, list[dict]]:
    """Harness wall time, its own summed forward time, and the evaluations it timed."""
    argv = ["--suite", suite, "--models", model, "--out", str(out), "--no-profile", "--no-publish", "--device", "cpu",
            "--shard", chunk]
    if run.main(argv) != 0:
        raise SystemExit(f"the harness run of {model} failed")
    import pandas as pd

    k, n = chunk.split("/")
    info = json.loads((out / ("run.json" if n == "1" else f"shards/run-{k}-of-{n}.json")).read_text())
    timings = out / ("timings.parquet" if n == "1" else f"shards/timings-{k}-of-{n}.parquet")
    timings = pd.read_parquet(timings).to_dict("records") if timings.is_file() else []
    return info["eval_wall_s"], info["forward_s_this_session"], timings


def forward_only(suite_name: str, model: str, timings: list[dict], scratch: Path) -> float:
    """Summed time of ``model(lr, ref)`` alone over the evaluations the harness timed."""
    suite = load_suite(suite_name, models=[model])
    device = select_device("cpu")
    ev = Evaluator(RunConfig(suite=suite, device=device, run_dir=scratch), ResultStore(scratch))
    lm = ev.model(model)
    inputs, first = [], None
    for t in timings:  # inputs made before anything is timed
        ds, _ = ev.dataset(t["dataset"])
        variant = _build_variant(t["variant"])
        samples = select_samples(ds, suite, clean=is_baseline(t["variant"]))
        s = next(x for x in samples.itertuples(index=False) if x.sample_id == t["image"])
        _, lr, ref = ev.prepare(lm, ds, variant, s)
        first = first or (lr, ref)
        inputs.append(fit_size(lm.model.spec, to_tensor(lr, device), to_tensor(ref, device)))
    total = 0.0
    with torch.no_grad():
        if first:
            warm_up(lm.model, *first, device)  # not timed: the harness's own warm-up, on the same input
        for lr_p, ref_p in inputs:
            t0 = time.perf_counter()
            lm.model(lr_p, ref_p)
            total += time.perf_counter() - t0
    return total


def runnable(model: str) -> bool:
    """Whether the model's weight files are here (the harness would report the others as not scored)."""
    from models.checkpoint import CheckpointError
    from models.weights import resolve_weights

    try:
        resolve_weights(model)
        return True
    except (CheckpointError, OSError, ValueError) as exc:
        print(f"{model}: not run ({str(exc).splitlines()[0]})")
        return False


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="demo")
    p.add_argument("--models", default=None, help="comma-separated (default: the suite's runnable models)")
    p.add_argument("--chunks", type=int, default=8, help="slices of each model's images, alternated (default 8)")
    args = p.parse_args()
    models = [m for m in (args.models.split(",") if args.models else load_suite(args.suite).models) if runnable(m)]
    wall = alone = own = 0.0
    evaluations = 0
    for model in models:
        for k in range(args.chunks):
            with tempfile.TemporaryDirectory() as tmp:
                w, f, timings = harness(args.suite, model, Path(tmp) / "run", f"{k}/{args.chunks}")
                if not timings:
                    print(f"{model} {k}/{args.chunks}: nothing run (no weights, or no image in this slice)")
                    continue
                a = forward_only(args.suite, model, timings, Path(tmp) / "scratch")
            print(f"{model} {k}/{args.chunks}: {len(timings)} forwards; harness wall {w:.2f} s (its forwards "
                  f"{f:.2f} s); forward-only {a:.2f} s; ratio {w / a:.3f}", flush=True)
            wall, alone, own, evaluations = wall + w, alone + a, own + f, evaluations + len(timings)
    print(f"suite {args.suite}: {evaluations} model evaluations in {args.chunks} alternating slices per model, "
          f"torch threads {torch.get_num_threads()}")
    print(f"harness wall time                 {wall:8.2f} s")
    print(f"forward-only time (same inputs)   {alone:8.2f} s")
    print(f"forward time inside the harness   {own:8.2f} s")
    print(f"overhead (wall - forward-only)    {wall - alone:8.2f} s  ({(wall - alone) / max(evaluations, 1) * 1000:.1f} ms "
          f"per evaluation)")
    print(f"ratio harness wall / forward-only {wall / alone:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
