"""Evaluate your own model from Python, without registering it:

    import benchmark
    rows = benchmark.evaluate(my_net, "demo", metrics=["psnr_y", "ssim_y"], variants=["clean", "lr"])

``model`` is a registered ``name[.tag]``, any ``nn.Module`` or a function ``(lr, ref) -> sr`` on RGB
tensors in [0, 1] (``(B,3,h,w)``, ``(B,3,H,W)`` -> ``(B,3,s*h,s*w)``). The rows are the ones the CLI
writes (``results.parquet``), with the same protocol, variants and provenance.
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd


def evaluate(model, dataset: str, *, protocol: str = "refsr-standard", variants=("clean",),
             metrics=("psnr_y", "ssim_y"), levels="all", split: str = "test", limit: int | None = None,
             seed: int = 0, drift_protocols=(), device: str = "auto", name: str | None = None, scale: int = 4,
             out: str | Path | None = None, save_sr: bool = False) -> pd.DataFrame:
    """Score ``model`` on ``dataset`` (a name from ``datasets/*.yaml`` or a dataset folder); return the rows.

    ``out`` keeps the run folder (resumable, like ``--out``); without it a temporary folder is used.
    """
    from .device import select_device
    from .evaluation import Evaluator, RunConfig, wrap_model
    from .suite import jobs, validate

    dev = select_device(device)
    loaded = wrap_model(model, dev, name=name, scale=scale)
    suite = validate({"name": "api", "models": [], "datasets": [str(dataset)], "split": split, "levels": levels,
                      "variants": list(variants), "protocol": protocol, "drift_protocols": list(drift_protocols),
                      "metrics": list(metrics), "seed": seed, "limit": limit}, source="benchmark.evaluate")
    suite = replace(suite, models=(loaded.name,))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(out) if out is not None else Path(tmp)
        evaluator = Evaluator(RunConfig(suite=suite, device=dev, run_dir=run_dir, save_sr=save_sr),
                              models={loaded.name: loaded})
        df = evaluator.run(jobs(suite))
        if loaded.name in evaluator.out.unavailable_models:
            raise RuntimeError(f"{loaded.name}: {evaluator.out.unavailable_models[loaded.name]}")
        return df
