"""Is the loader the bottleneck? Crops/s of the loader alone against crops/s of the model's steps."""
from __future__ import annotations

import time

import torch

from .data import StepBatchSampler, TrainCrops, loader_throughput, make_loader


def bench_loader(trainer, batches: int = 10, steps: int = 3) -> dict:
    r, cfg, device = trainer.recipe, trainer.cfg, trainer.dist.device
    crops = TrainCrops(trainer.ds, trainer.table, r["protocol"], trainer.spec.scale, int(r["crop_size"]),
                       int(r["ref_size"] or r["crop_size"]), r["augment"], cfg.seed, trainer.spe, pairs=r.get("pairs"))
    workers = cfg.workers if cfg.workers is not None else (4 if device.type == "cuda" else 0)
    sampler = StepBatchSampler(len(trainer.table), trainer.batch, cfg.seed, 0, batches + 1)
    loader = make_loader(crops, sampler, workers, pin_memory=device.type == "cuda")
    crops_s = loader_throughput(loader, batches)
    batch = next(iter(make_loader(crops, StepBatchSampler(len(trainer.table), trainer.batch, cfg.seed, 0, 1))))
    lr, ref, hr = (batch[k].to(device) for k in ("lr", "ref", "hr"))
    extras = {k: v.to(device) for k, v in batch.items() if k not in ("lr", "ref", "hr")}
    trainer.forward.train()
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        trainer.optimizer.zero_grad()
        out = trainer.forward(lr, ref, (), extras)[0]
        loss = (torch.nn.functional.l1_loss(out.float(), hr) if torch.is_tensor(out)  # an extractor stage: its losses
                else sum(t.weight * t.module(out, hr, {"ref": ref, **extras}) for t in trainer.losses))
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    step_s = 1 / (sum(times[1:]) / steps)
    out = {"loader_crops_per_s": crops_s, "workers": workers, "model_steps_per_s": step_s,
           "model_crops_per_s": step_s * trainer.batch, "batch": trainer.batch}
    verdict = "the loader keeps up" if crops_s >= out["model_crops_per_s"] else "the LOADER IS THE BOTTLENECK"
    print(f"loader: {crops_s:.1f} crops/s ({workers} workers) | model: {step_s:.3f} steps/s x batch "
          f"{trainer.batch} = {out['model_crops_per_s']:.1f} crops/s -> {verdict}")
    return out
