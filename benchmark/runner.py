"""Evaluate a suite: every job (model × dataset × variant) over its samples, one row per metric.

Per image: the protocol makes (HR as evaluated, LR); the variant makes the reference; the model
runs under the harness's size policy (pad to the model's multiples, crop back); the protocol
quantises and scores. Failures (exceptions, NaN, out of memory) become rows with a reason and the
run goes on. Rows are flushed after every image, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from builders.images import read_rgb
from builders.manifest import Dataset
from builders.variants import VariantInput, get_variant, variant_rng
from models import create_model, get_spec
from models.checkpoint import CheckpointError, find_weights, weights_dir

from . import dataset_registry, provenance
from .device import describe, synchronize
from .metrics import availability, get_metric
from .protocol import load_protocol
from .results import ResultStore
from .suite import Job, Suite, _resolve_variant_arg

DRIFT_METRICS = ("psnr_y", "ssim_y")


@dataclass
class LoadedModel:
    name: str
    weights: str  # "official", "none" (parameter-free / training-free) …
    model: torch.nn.Module | None
    unavailable: str = ""


def load_for_eval(name: str, device: torch.device) -> LoadedModel:
    """A model ready to score, or the reason it cannot be: never a model with random weights."""
    spec = get_spec(name)
    try:
        if not spec.checkpoints:
            return LoadedModel(name, "none", create_model(name).eval().to(device))
        files, missing = {}, []
        for ck in spec.checkpoints:
            path = find_weights(name, ck.filename)
            if path is None:
                missing.append(ck)
            else:
                files[ck.role] = str(path)
        if missing:
            files_needed = ", ".join(ck.filename for ck in missing)
            return LoadedModel(name, "official", None, f"no official weights: put {files_needed} in "
                               f"$REFSR_WEIGHTS/{name}/ (see --list-models for where the authors publish them)")
        model = create_model(name)
        model.load_official(files)
        return LoadedModel(name, "official", model.eval().to(device))
    except (CheckpointError, OSError) as exc:
        return LoadedModel(name, "official" if spec.checkpoints else "none", None, str(exc).splitlines()[0])


def weights_status(name: str) -> str:
    """One-line weight status for ``--list-models``."""
    spec = get_spec(name)
    if not spec.checkpoints:
        return "no learned RefSR weights needed"
    found = [ck.filename for ck in spec.checkpoints if find_weights(name, ck.filename)]
    if len(found) == len(spec.checkpoints):
        return "official weights found"
    return f"missing {len(spec.checkpoints) - len(found)} file(s) under {weights_dir() / name}"


def to_tensor(img: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1).unsqueeze(0).float().div(255.0).to(device)


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def run_model(model: torch.nn.Module, lr: np.ndarray, ref: np.ndarray, device: torch.device) -> tuple[torch.Tensor, float]:
    """Size policy (pad LR/ref to the spec's multiples, limit ref size), forward, crop back. Returns (sr, seconds)."""
    spec = model.spec
    lr_t, ref_t = to_tensor(lr, device), to_tensor(ref, device)
    if spec.max_ref_side and max(ref_t.shape[-2:]) > spec.max_ref_side:
        s = spec.max_ref_side / max(ref_t.shape[-2:])
        ref_t = F.interpolate(ref_t, scale_factor=s, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    h, w = lr_t.shape[-2:]
    lr_p, ref_p = _pad_to(lr_t, spec.lr_multiple), _pad_to(ref_t, spec.ref_multiple)
    synchronize(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        sr = model(lr_p, ref_p)
    synchronize(device)
    seconds = time.perf_counter() - t0
    return sr[..., : h * spec.scale, : w * spec.scale], seconds


@dataclass
class RunContext:
    suite: Suite
    device: torch.device
    run_dir: Path
    store: ResultStore
    dtype: str = "float32"
    timings: list[dict] = field(default_factory=list)
    unavailable_models: dict[str, str] = field(default_factory=dict)
    shard: tuple[int, int] = (0, 1)  # (index, count): this process scores only its share of the images
    #: rows of reference-free models by (model, dataset, HR file): their output ignores level and variant
    no_ref_rows: dict[tuple[str, str, str], list[dict]] = field(default_factory=dict)


def evaluate(ctx: RunContext, jobs: list[Job]) -> pd.DataFrame:
    """Run every job, resuming past finished images; return the merged results."""
    suite = ctx.suite
    protocol = load_protocol(suite.protocol)
    drift = [load_protocol(p) for p in suite.drift_protocols]
    metrics = availability(suite.metrics, ctx.device)  # name -> (available, reason)
    done = ctx.store.done_images()
    common = {"suite": suite.name, "protocol": protocol.name, "protocol_hash": protocol.hash,
              "device": describe(ctx.device), "dtype": ctx.dtype, "seed": suite.seed,
              "git_sha": provenance.git_sha(), "versions": json.dumps(provenance.versions(), sort_keys=True)}
    loaded: dict[str, LoadedModel] = {}
    datasets: dict[str, Dataset] = {}
    fingerprints: dict[str, str] = {}  # sha256 of each manifest, hashed once per dataset, not per image
    unavailable: dict[str, str] = {}
    for job in jobs:
        if job.model not in loaded:
            loaded[job.model] = load_for_eval(job.model, ctx.device)
        lm = loaded[job.model]
        if lm.model is None:
            unavailable[job.model] = lm.unavailable
            continue
        if job.dataset not in datasets:
            datasets[job.dataset] = dataset_registry.open_dataset(dataset_registry.resolve(job.dataset))
            fingerprints[job.dataset] = datasets[job.dataset].fingerprint()
        ds = datasets[job.dataset]
        samples = select_samples(ds, suite, clean=job.variant == "clean")
        variant = get_variant(_resolve_variant_arg(job.variant))
        todo = [s for s in samples.itertuples(index=False)
                if (job.model, lm.weights, job.dataset, job.variant, s.sample_id) not in done
                and in_shard(f"{job.key}|{s.sample_id}", *ctx.shard)]
        if not todo:
            continue
        for s in tqdm(todo, desc=f"{job.model} · {job.dataset} · {job.variant}", unit="img", leave=False):
            memo = (job.model, job.dataset, s.hr)
            if not lm.model.spec.uses_ref and memo in ctx.no_ref_rows:
                rows = ctx.no_ref_rows[memo]
            else:
                rows = evaluate_sample(ctx, lm, ds, job, variant, s, protocol, drift, metrics)
                if not lm.model.spec.uses_ref and all(r["status"] != "failed" for r in rows):
                    ctx.no_ref_rows[memo] = rows
            base = {**common, "model": job.model, "weights": lm.weights, "dataset": job.dataset,
                    "split": s.split, "variant": job.variant, "level": int(s.level), "image": s.sample_id,
                    "dataset_hash": fingerprints[job.dataset]}
            ctx.store.add([{**base, **r} for r in rows])
            ctx.store.flush()
    ctx.unavailable_models = unavailable
    return ctx.store.merge()


def in_shard(key: str, index: int, count: int) -> bool:
    """Stable assignment of work to one of ``count`` shards (sha256, not Python's salted hash)."""
    return count == 1 or int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % count == index


def select_samples(ds: Dataset, suite: Suite, clean: bool = True) -> pd.DataFrame:
    """The samples a job scores: the suite's split, levels (variant levels for non-clean jobs) and limit."""
    df = ds.samples(split=suite.split)
    if df.empty:  # e.g. a plain folder import has only one split
        df = ds.samples()
    levels = suite.levels if clean else suite.variant_levels
    if levels is not None and (df["level"] > 0).any():
        df = df[df["level"].isin(levels)]
    if suite.limit:
        groups = sorted(df["group"].unique())[: int(suite.limit)]
        df = df[df["group"].isin(groups)]
    return df


def evaluate_sample(ctx: RunContext, lm: LoadedModel, ds: Dataset, job: Job, variant, s, protocol, drift,
                    metrics: dict[str, tuple[bool, str]]) -> list[dict]:
    """All metric rows for one image; on failure, one failed row per metric with the reason."""
    suite, scale = ctx.suite, lm.model.spec.scale
    names = list(suite.metrics) + [f"{m}@{p.name}" for p in drift for m in DRIFT_METRICS]
    try:
        hr, _ = read_rgb(ds.path(s.hr))
        hr_eval, lr = protocol.make_pair(hr, scale)
        ref = read_rgb(ds.path(s.ref))[0] if s.ref else None
        inp = VariantInput(sample_id=s.sample_id, level=int(s.level), hr=hr_eval, ref=ref, lr=lr, scale=scale,
                           refs=group_refs(ds, s) if variant.uses_group_refs else ())
        new_ref, _record = variant.apply(inp, variant_rng(suite.seed, s.sample_id, variant.name))
        if new_ref is None:  # no reference at all (SISR set, clean variant): LR-as-reference
            new_ref, _ = get_variant("lr").apply(inp, variant_rng(suite.seed, s.sample_id, "lr"))
        sr, seconds = run_model(lm.model, lr, protocol.prepare_ref(new_ref, scale), ctx.device)
        if not torch.isfinite(sr).all():
            raise FloatingPointError("model output contains NaN or Inf")
        ctx.timings.append({"model": job.model, "dataset": job.dataset, "variant": job.variant,
                            "image": s.sample_id, "forward_s": seconds})
        sr_img = sr[0].permute(1, 2, 0).float().cpu().numpy()
        scorable = [m for m in suite.metrics if metrics[m][0]]
        values = protocol.score(protocol.quantise(sr_img), hr_eval, metrics=scorable, device=ctx.device, scale=scale)
        rows = [_row(m, values[m]) if m in values else _row(m, math.nan, "unavailable", metrics[m][1])
                for m in suite.metrics]
        for p in drift:
            for m, v in p.score(p.quantise(sr_img), hr_eval, metrics=DRIFT_METRICS, device=ctx.device,
                                scale=scale).items():
                rows.append(_row(f"{m}@{p.name}", v))
        return rows
    except Exception as exc:  # recorded, not fatal: one bad image must not stop a benchmark
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        return [_row(m, math.nan, "failed", reason) for m in names]


def group_refs(ds: Dataset, s) -> tuple[np.ndarray, ...]:
    """The other references of a sample's group, in level order (for the ``stitch`` variant)."""
    m = ds.manifest
    others = m[(m["group"] == s.group) & (m["split"] == s.split) & (m["sample_id"] != s.sample_id) & (m["ref"] != "")]
    return tuple(read_rgb(ds.path(rel))[0] for rel in others.sort_values("level")["ref"])


def _row(metric: str, value: float, status: str = "ok", reason: str = "") -> dict:
    base = metric.split("@")[0]
    return {"metric": metric, "value": float(value), "higher_is_better": get_metric(base, "cpu").higher_is_better,
            "status": status, "reason": reason}
