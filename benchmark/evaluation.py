"""Evaluate a suite: every job (model × dataset × variant) over its samples, one row per metric.

Each image goes through small stages, each a function of its own:
read (:func:`read_sample`) → make inputs (the protocol's ``make_pair``) → apply the variant
(:func:`builders.variants.variant_reference`, shared with ``builders.variant``) → fit the size to the
model's spec (:func:`fit_reference`: reference size limit and memory guard, then :func:`fit_size`) →
run (:func:`run_model`) → score under the run's protocol and every drift protocol (:func:`score_rows`).
Failures (exceptions, NaN, out of memory, an input over the model's memory estimate, refused before
allocating) become rows with a reason and the run goes on. Rows are flushed after every image, so an
interrupted run resumes where it stopped. Nothing is ever scored with random weights: a model whose
files are missing or unreadable is "not scored" with the reason.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from builders.images import read_rgb, write_png
from builders.manifest import Dataset
from builders.variants import (VARIANTS, VariantInput, get_variant, group_reference_paths, is_baseline,
                               variant_reference)
from core import provenance
from core.resize import pil_bicubic
from models import ModelSpec, RefSRModel, create_model
from models.checkpoint import CheckpointError
from models.weights import ResolvedWeights, load_weights, resolve_weights

from . import dataset_registry
from .device import ForwardTimer, autocast, available_memory, describe
from .metrics import availability, metric_info
from .protocol import Protocol, load_protocol
from .results import PROVENANCE_KEY, ResultStore
from .suite import Job, Suite

DRIFT_METRICS = ("psnr_y", "ssim_y")


@dataclass
class LoadedModel:
    name: str  # name[.tag]
    weights: ResolvedWeights
    model: torch.nn.Module | None
    unavailable: str = ""
    precomputed: Path | None = None  # a folder of SR images <sample_id>.png scored instead of running a model


class CallableModel(RefSRModel):
    """An unregistered ``nn.Module`` or function ``(lr, ref) -> sr`` behind the zoo's interface."""

    def __init__(self, fn, spec: ModelSpec):
        super().__init__()
        self.fn, self.spec = fn, spec

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.fn(lr, ref)


def _state_sha256(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def wrap_model(model, device: torch.device, name: str | None = None, scale: int = 4) -> LoadedModel:
    """Any model for evaluation: a registered ``name[.tag]`` (its official weights), an ``nn.Module``
    or a plain function ``(lr, ref) -> sr`` on RGB tensors in [0, 1] (rows say ``custom`` and, for a
    module, the sha256 of its state dict)."""
    if isinstance(model, str):
        return load_for_eval(model, device)
    spec = getattr(model, "spec", None)
    label = name or (spec.name if isinstance(spec, ModelSpec) else
                     getattr(model, "__name__", None) or type(model).__name__)
    spec = replace(spec, name=label) if isinstance(spec, ModelSpec) else ModelSpec(name=label, scale=scale)
    wrapped = model if isinstance(model, RefSRModel) else CallableModel(model, spec)
    wrapped.spec = spec
    sha = {"state_dict": _state_sha256(wrapped)} if len(wrapped.state_dict()) else {}
    return LoadedModel(label, ResolvedWeights(label, sha256=sha, label="custom"), wrapped.eval().to(device))


def precomputed_model(folder: Path, name: str, scale: int = 4) -> LoadedModel:
    """SR images already made (``<folder>/<sample_id>.png``), scored like a model's outputs."""
    spec = ModelSpec(name=name, scale=scale)
    return LoadedModel(name, ResolvedWeights(name, label="precomputed"), CallableModel(None, spec),
                       precomputed=Path(folder))


def load_for_eval(name: str, device: torch.device, files=None) -> LoadedModel:
    """A model ready to score with its resolved weights, or the reason it cannot be."""
    try:
        resolved = resolve_weights(name, files)
        model = create_model(name)
        load_weights(model, resolved.files)
        return LoadedModel(resolved.tag, resolved, model.eval().to(device))
    except (CheckpointError, OSError, ValueError) as exc:
        return LoadedModel(name, ResolvedWeights(name), None, str(exc))


# -- stages -------------------------------------------------------------------------------------
def read_sample(ds: Dataset, s) -> tuple[np.ndarray, np.ndarray | None]:
    """HR and clean reference (None when the sample has none) as uint8 RGB."""
    hr, _ = read_rgb(ds.path(s.hr))
    ref = read_rgb(ds.path(s.ref))[0] if s.ref else None
    return hr, ref


def dataset_lr(ds: Dataset, s, protocol) -> np.ndarray | None:
    """The sample's own LR file when the protocol asks for it (``lr.kernel: dataset``), else None."""
    rel = getattr(s, "lr", None)
    if protocol.lr.kernel != "dataset" or not isinstance(rel, str) or not rel:
        return None
    return read_rgb(ds.path(rel))[0]


def make_variant_input(ds: Dataset, s, variant, hr_eval: np.ndarray, ref, lr: np.ndarray, scale: int) -> VariantInput:
    refs = ()
    if variant.uses_group_refs:
        refs = tuple(read_rgb(ds.path(rel))[0] for _, rel in group_reference_paths(ds.manifest, s.sample_id, s.group, s.split))
    return VariantInput(sample_id=s.sample_id, level=int(s.level), hr=hr_eval, ref=ref, lr=lr, scale=scale, refs=refs)


def to_tensor(img: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1).unsqueeze(0).float().div(255.0).to(device)


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


class InputTooLarge(MemoryError):
    """An input the model's spec refuses (reference over its limit, or over the memory limit)."""


def fit_reference(spec: ModelSpec, lr: np.ndarray, ref: np.ndarray, max_memory_gib: float | None = None,
                  device: torch.device | str = "cpu") -> tuple[np.ndarray, str]:
    """The spec's reference limit and the memory guard, applied before anything is allocated for
    the forward. A reference longer than ``max_ref_side`` is downsized (PIL bicubic) and the returned
    note says so, or refused (``oversize_ref: fail``); an input whose estimated forward memory
    (``spec.memory``) exceeds ``max_memory_gib`` (default: what the device has available) is refused."""
    note = ""
    h, w = ref.shape[:2]
    if spec.max_ref_side and max(h, w) > spec.max_ref_side:
        if spec.oversize_ref == "fail":
            raise InputTooLarge(f"reference {w}x{h} is over {spec.name}'s max_ref_side {spec.max_ref_side} "
                                f"(oversize_ref: fail)")
        s = spec.max_ref_side / max(h, w)
        size = (min(spec.max_ref_side, max(1, round(h * s))), min(spec.max_ref_side, max(1, round(w * s))))
        ref = pil_bicubic(ref, size)
        note = f"reference resized from {w}x{h} to {size[1]}x{size[0]} ({spec.name} max_ref_side {spec.max_ref_side})"
    if spec.memory is not None:
        need = spec.memory.estimate(lr.shape[:2], ref.shape[:2])
        limit = max_memory_gib * 2 ** 30 if max_memory_gib is not None else available_memory(device)
        if limit is not None and need > limit:
            raise InputTooLarge(f"{spec.name} would need ~{need / 2 ** 30:.1f} GiB for LR {lr.shape[1]}x{lr.shape[0]} / "
                                f"Ref {ref.shape[1]}x{ref.shape[0]}, limit {limit / 2 ** 30:.1f} GiB; set --max-memory")
    return ref, note


def fit_size(spec, lr_t: torch.Tensor, ref_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec's size policy: pad LR and reference to their multiples (the reference limit is
    :func:`fit_reference`'s, applied before)."""
    return _pad_to(lr_t, spec.lr_multiple), _pad_to(ref_t, spec.ref_multiple)


def run_model(model: torch.nn.Module, lr: np.ndarray | list[np.ndarray], ref: np.ndarray | list[np.ndarray],
              device: torch.device, precision: str = "fp32") -> tuple[torch.Tensor, float]:
    """Fit the size, forward (under autocast for bf16/fp16), crop back. Returns (float32 sr, seconds
    timed by :class:`~benchmark.device.ForwardTimer`). Lists of same-size LRs and references are
    one batch (``B`` = their number)."""
    spec = model.spec
    lr_t = torch.cat([to_tensor(x, device) for x in (lr if isinstance(lr, list) else [lr])])
    ref_t = torch.cat([to_tensor(x, device) for x in (ref if isinstance(ref, list) else [ref])])
    h, w = lr_t.shape[-2:]
    lr_p, ref_p = fit_size(spec, lr_t, ref_t)
    with ForwardTimer(device) as timer, torch.no_grad(), autocast(device, precision):
        sr = model(lr_p, ref_p)
    return sr[..., : h * spec.scale, : w * spec.scale].float(), timer.seconds


def warm_up(model: torch.nn.Module, lr: np.ndarray, ref: np.ndarray, device: torch.device,
            precision: str = "fp32", side: int = 16) -> None:
    """One untimed forward on the top-left corner of the first input (LR at most ``side`` pixels a
    side, the reference the matching area at scale): the first call's one-off costs (allocator,
    kernels, lazy set-up) at a fraction of a full forward. A model that refuses the small input
    warms up on the full one."""
    s = model.spec.scale
    try:
        run_model(model, lr[:side, :side], ref[: side * s, : side * s], device, precision)
    except Exception:  # noqa: BLE001 - e.g. a model with a minimum input size
        run_model(model, lr, ref, device, precision)


def score_rows(sr: torch.Tensor, hr_eval: np.ndarray, protocol: Protocol, drift: list[Protocol],
               metrics: list[str], available: dict[str, tuple[bool, str]], device, scale: int) -> list[dict]:
    """Rows for one SR output: the suite's metrics under the run's protocol, drift metrics under the others."""
    sr_img = sr[0].permute(1, 2, 0).float().cpu().numpy()
    scorable = [m for m in metrics if available[m][0]]
    values = protocol.score(protocol.quantise(sr_img), hr_eval, metrics=scorable, device=device, scale=scale)
    rows = [_row(m, protocol, values[m]) if m in values else _row(m, protocol, math.nan, "unavailable", available[m][1])
            for m in metrics]
    scored = {protocol.scoring_key: values}  # a drift protocol that scores alike reuses the values
    for p in drift:
        known = scored.get(p.scoring_key, {})
        if not all(m in known for m in DRIFT_METRICS):
            known = scored[p.scoring_key] = p.score(p.quantise(sr_img), hr_eval, metrics=DRIFT_METRICS,
                                                    device=device, scale=scale)
        rows.extend(_row(m, p, known[m]) for m in DRIFT_METRICS)
    return rows


def score_quantised(sr_q: np.ndarray, hr_eval: np.ndarray, protocol: Protocol, metrics: list[str],
                    available: dict[str, tuple[bool, str]], device, scale: int) -> list[dict]:
    """Rows for an SR image already quantised to 0..255 (a saved or published output)."""
    scorable = [m for m in metrics if available[m][0]]
    values = protocol.score(sr_q, hr_eval, metrics=scorable, device=device, scale=scale)
    return [_row(m, protocol, values[m]) if m in values else _row(m, protocol, math.nan, "unavailable", available[m][1])
            for m in metrics]


def _row(metric: str, protocol: Protocol, value: float, status: str = "ok", reason: str = "") -> dict:
    return {"metric": metric, "protocol": protocol.name, "protocol_hash": protocol.hash, "value": float(value),
            "higher_is_better": metric_info(metric).higher_is_better, "status": status, "reason": reason}


# -- the run --------------------------------------------------------------------------------------
@dataclass
class RunConfig:
    """What a run is given."""

    suite: Suite
    device: torch.device
    run_dir: Path
    precision: str = "fp32"  # fp32 (TF32 off) | tf32 | bf16 | fp16; recorded in every row's dtype
    shard: tuple[int, int] = (0, 1)  # (index, count): this process scores only its share of the images
    weights: dict[str, object] = field(default_factory=dict)  # model name -> user weight files
    save_sr: bool = False  # write every SR output (uint8 PNG after quantisation) under run_dir/sr/
    batch_size: int = 1  # same-size images per forward, for models whose spec says ``batchable``
    max_memory_gib: float | None = None  # memory guard's limit per forward (None: what the device has free)


@dataclass
class RunOutput:
    """What a run produces besides its rows."""

    timings: list[dict] = field(default_factory=list)
    unavailable_models: dict[str, str] = field(default_factory=dict)


class Evaluator:
    """Runs jobs for one :class:`RunConfig`, writing rows to the run's :class:`ResultStore`."""

    def __init__(self, cfg: RunConfig, store: ResultStore | None = None, models: dict[str, LoadedModel] | None = None):
        self.cfg = cfg
        self.store = store or ResultStore(cfg.run_dir)
        self.out = RunOutput()
        suite = cfg.suite
        self.protocol = load_protocol(suite.protocol)
        self.drift = [load_protocol(p) for p in suite.drift_protocols]
        self._protocols = {suite.protocol: self.protocol}  # and the paper protocols jobs name
        self.available = availability(suite.metrics, cfg.device)
        self.common = {"suite": suite.name, "device": describe(cfg.device), "dtype": cfg.precision, "seed": suite.seed,
                       "git_sha": provenance.git_sha(), "versions": json.dumps(provenance.versions(), sort_keys=True)}
        self._models: dict[str, LoadedModel] = dict(models or {})  # unregistered or precomputed models
        self._datasets: dict[str, tuple[Dataset, str]] = {}
        #: rows of reference-free models by (model, dataset, HR file): their output ignores level and variant
        self._no_ref_rows: dict[tuple[str, str, str], list[dict]] = {}
        self._warm: set[str] = set()  # models whose untimed warm-up forward has run

    def model(self, name: str) -> LoadedModel:
        if name not in self._models:
            self._models[name] = load_for_eval(name, self.cfg.device, self.cfg.weights.get(name))
        return self._models[name]

    def dataset(self, name: str) -> tuple[Dataset, str]:
        """The dataset and its fingerprint (sha256 of its manifest, hashed once per dataset)."""
        if name not in self._datasets:
            ds = dataset_registry.open_dataset(dataset_registry.resolve(name))
            self._datasets[name] = (ds, ds.fingerprint())
        return self._datasets[name]

    def job_protocol(self, job: Job) -> Protocol:
        """The protocol a job runs under: the suite's, or the model's paper protocol it names."""
        name = job.protocol or self.cfg.suite.protocol
        if name not in self._protocols:
            self._protocols[name] = load_protocol(name)
        return self._protocols[name]

    def run(self, jobs: list[Job]) -> pd.DataFrame:
        """Run every job, resuming past finished images; return the merged results."""
        done = self.store.done_images()
        for job in jobs:
            lm = self.model(job.model)
            if lm.model is None:
                self.out.unavailable_models[job.model] = lm.unavailable
                continue
            ds, fingerprint = self.dataset(job.dataset)
            variant = _build_variant(job.variant)
            samples = select_samples(ds, self.cfg.suite, clean=is_baseline(job.variant))
            base_all = {**self.common, "model": lm.name, "weights": lm.weights.label,
                        "weights_tag": lm.weights.tag, "weights_sha256": lm.weights.sha256_json(),
                        "dataset": job.dataset, "variant": job.variant, "dataset_hash": fingerprint}
            protocol = self.job_protocol(job)
            made_from = tuple(protocol.hash if k == "protocol_hash" else base_all[k] for k in PROVENANCE_KEY)
            todo = [s for s in samples.itertuples(index=False)
                    if (lm.name, lm.weights.label, job.dataset, job.variant, s.sample_id, *made_from) not in done
                    and in_shard(shard_key(job, s, lm.model.spec.uses_ref), *self.cfg.shard)]
            size = max(1, self.cfg.batch_size) if lm.model.spec.batchable else 1
            bar = tqdm(total=len(todo), desc=f"{job.model} · {job.dataset} · {job.variant}", unit="img", leave=False)
            with ThreadPoolExecutor(1) as prefetch, bar:  # the next images' inputs are made during this forward
                ahead: deque[tuple[object, Future | _Later]] = deque()
                pending, hrs = iter(todo), set()
                while True:
                    while len(ahead) <= size and (s := next(pending, None)) is not None:
                        # a reference-free model's repeated HR reuses rows: its inputs are made only if needed
                        repeat = not lm.model.spec.uses_ref and (
                            s.hr in hrs or (lm.name, job.dataset, s.hr, job.protocol) in self._no_ref_rows)
                        hrs.add(s.hr)
                        ahead.append((s, _Later(self.prepare, lm, ds, variant, s, protocol) if repeat
                                      else prefetch.submit(self.prepare, lm, ds, variant, s, protocol)))
                    if not ahead:
                        break
                    group = [ahead.popleft()]
                    while ahead and len(group) < size and _same_shapes(group[0][1], ahead[0][1]):
                        group.append(ahead.popleft())
                    for s, rows in self.group_rows(lm, job, group):
                        base = {**base_all, "split": s.split, "level": int(s.level), "image": s.sample_id}
                        self.store.add([{**base, **r} for r in rows])
                    self.store.maybe_flush()
                    bar.update(len(group))
        return self.store.merge(current={name: fp for name, (_, fp) in self._datasets.items()})

    def prepare(self, lm: LoadedModel, ds: Dataset, variant, s, protocol: Protocol | None = None) -> tuple:
        """Stages before the model: read, make (HR as scored, LR), apply the variant, prepare the
        reference. A protocol that stacks a group (``reference.stack: group-vertical``, MASA's multi-reference
        test) gets, with the baseline variant, the sample's reference followed by the other
        references of its group in level order; other variants give the one reference they make."""
        protocol = protocol or self.protocol
        scale = lm.model.spec.scale
        hr, ref = read_sample(ds, s)
        hr_eval, lr = protocol.make_pair(hr, scale, dataset_lr(ds, s, protocol))
        if lm.precomputed is not None:
            return hr_eval, lr, None
        inp = make_variant_input(ds, s, variant, hr_eval, ref, lr, scale)
        new_ref, _ = variant_reference(variant, inp, self.cfg.suite.seed, fallback=True)
        if protocol.reference.stack == "group-vertical" and is_baseline(variant.name) and ref is not None:
            others = group_reference_paths(ds.manifest, s.sample_id, s.group, s.split)
            new_ref = [new_ref, *(read_rgb(ds.path(rel))[0] for _, rel in others)]
        return hr_eval, lr, protocol.prepare_ref(new_ref, scale)

    def group_rows(self, lm: LoadedModel, job: Job, group: list[tuple[object, Future | _Later]]
                   ) -> list[tuple[object, list[dict]]]:
        """Rows of a group of same-size images: one batched forward when there are several to run
        (a reference-free model's repeated HR reuses its rows); if the batch fails, one at a time."""
        todo, seen = [], set()
        for s, f in group:  # a reference-free model runs each HR once
            memo = (lm.name, job.dataset, s.hr, job.protocol)
            if lm.model.spec.uses_ref or (memo not in self._no_ref_rows and memo not in seen):
                todo.append((s, f))
                seen.add(memo)
        if len(todo) < 2:
            return [(s, self.sample_rows(lm, job, s, f)) for s, f in group]
        try:
            prepared = [f.result() for _, f in todo]
            for hr_eval, lr, ref in prepared:  # a reference to downsize or an input over the memory guard:
                if fit_reference(lm.model.spec, lr, ref, self.cfg.max_memory_gib, self.cfg.device)[1]:
                    raise InputTooLarge("handled image by image")  # each image then says so in its rows
            if lm.name not in self._warm:
                warm_up(lm.model, prepared[0][1], prepared[0][2], self.cfg.device, self.cfg.precision)
                self._warm.add(lm.name)
            sr, seconds = run_model(lm.model, [p[1] for p in prepared], [p[2] for p in prepared],
                                    self.cfg.device, self.cfg.precision)
        except Exception:  # noqa: BLE001 - each image then fails (or succeeds) on its own
            return [(s, self.sample_rows(lm, job, s, f)) for s, f in group]
        forwards = {id(s): (sr[i:i + 1], seconds / len(todo), len(todo)) for i, (s, _) in enumerate(todo)}
        return [(s, self.sample_rows(lm, job, s, f, forwards.get(id(s)))) for s, f in group]

    def sample_rows(self, lm: LoadedModel, job: Job, s, prepared, forward=None) -> list[dict]:
        """All rows for one image, reusing a reference-free model's rows for the same HR."""
        uses_ref = lm.model.spec.uses_ref
        memo = (lm.name, job.dataset, s.hr, job.protocol)
        if not uses_ref and memo in self._no_ref_rows:
            return self._no_ref_rows[memo]
        rows = self.evaluate_sample(lm, job, s, prepared, forward)
        if not uses_ref and all(r["status"] != "failed" for r in rows):
            self._no_ref_rows[memo] = rows
        return rows

    def evaluate_sample(self, lm: LoadedModel, job: Job, s, prepared, forward=None) -> list[dict]:
        """Run and score one image from its prepared inputs (a future from :meth:`prepare`), or score
        ``forward`` = (sr, seconds, batch size) from a batched run; on failure, one failed row per
        metric with the reason."""
        suite, scale = self.cfg.suite, lm.model.spec.scale
        protocol = self.job_protocol(job)
        drift = self.drift if job.protocol is None else []  # drift rows re-score the suite protocol's outputs
        try:
            hr_eval, lr, ref = prepared.result()
            if lm.precomputed is not None:
                sr_q = read_rgb(lm.precomputed / f"{s.sample_id}.png")[0].astype(np.float64)
                return score_quantised(sr_q, hr_eval, protocol, list(suite.metrics), self.available,
                                       self.cfg.device, scale)
            ref, note = fit_reference(lm.model.spec, lr, ref, self.cfg.max_memory_gib, self.cfg.device) \
                if forward is None else (ref, "")
            if forward is None and lm.name not in self._warm:  # the first call's one-off costs: not timed
                warm_up(lm.model, lr, ref, self.cfg.device, self.cfg.precision)
                self._warm.add(lm.name)
            sr, seconds, batch = forward or (*run_model(lm.model, lr, ref, self.cfg.device, self.cfg.precision), 1)
            if not torch.isfinite(sr).all():
                raise FloatingPointError("model output contains NaN or Inf")
            self.out.timings.append({"model": lm.name, "dataset": job.dataset, "variant": job.variant,
                                     "image": s.sample_id, "protocol": protocol.name, "forward_s": seconds,
                                     "batch": batch})
            if self.cfg.save_sr and job.protocol is None:  # the suite protocol's outputs only
                self.save_sr(sr, lm.name, job, s.sample_id)
            rows = score_rows(sr, hr_eval, protocol, drift, list(suite.metrics), self.available,
                              self.cfg.device, scale)
            return [{**r, "reason": note} if note and r["status"] == "ok" else r for r in rows]
        except Exception as exc:  # recorded, not fatal: one bad image must not stop a benchmark
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            return ([_row(m, protocol, math.nan, "failed", reason) for m in suite.metrics]
                    + [_row(m, p, math.nan, "failed", reason) for p in drift for m in DRIFT_METRICS])


    def save_sr(self, sr: torch.Tensor, model: str, job: Job, sample_id: str) -> None:
        """``run_dir/sr/<model>/<dataset>/<variant>/<sample_id>.png``: the output as the protocol scores it."""
        q = self.protocol.quantise(sr[0].permute(1, 2, 0).float().cpu().numpy())
        folder = sr_folder(self.cfg.run_dir, model, job.dataset, job.variant)
        write_png(folder / f"{sample_id}.png", np.clip(np.rint(q), 0, 255).astype(np.uint8))


class _Later:
    """A :meth:`Evaluator.prepare` call made only when its result is asked for (like a Future)."""

    def __init__(self, fn, *args):
        self._call = Future()
        self._fn, self._args = fn, args

    def result(self):
        if not self._call.done():
            try:
                self._call.set_result(self._fn(*self._args))
            except Exception as exc:  # noqa: BLE001 - raised again by result(), as a Future does
                self._call.set_exception(exc)
        return self._call.result()


def _same_shapes(a: Future | _Later, b: Future | _Later) -> bool:
    """Whether two prepared inputs (futures of :meth:`Evaluator.prepare`) can share a batch."""
    if not isinstance(a, Future) or not isinstance(b, Future):
        return False
    if a.exception() is not None or b.exception() is not None:
        return False
    (_, lr_a, ref_a), (_, lr_b, ref_b) = a.result(), b.result()
    return ref_a is not None and ref_b is not None and lr_a.shape == lr_b.shape and ref_a.shape == ref_b.shape


def sr_folder(run_dir: Path, model: str, dataset: str, variant: str) -> Path:
    safe = [x.replace("/", "_").replace(":", "_") for x in (model, Path(dataset).name, variant)]
    return Path(run_dir) / "sr" / safe[0] / safe[1] / safe[2]


def _build_variant(spec: str):
    """The variant for a job; a named image pool is found (the demo pool made) here, at run time."""
    name, _, arg = spec.partition(":")
    if VARIANTS.info(name).get("pool") and arg:
        dataset_registry.resolve_pool(arg)
    return get_variant(spec)


def shard_key(job: Job, sample, uses_ref: bool) -> str:
    """What decides an image's shard: the job and sample; for a reference-free model its HR (every
    level and variant of one HR then lands in one shard, which runs it once and reuses the rows)."""
    if uses_ref:
        return f"{job.key}|{sample.sample_id}"
    return f"{job.model}|{Path(job.dataset).name}|{sample.hr}" + (f"|{job.protocol}" if job.protocol else "")


def in_shard(key: str, index: int, count: int) -> bool:
    """Stable assignment of work to one of ``count`` shards (sha256, not Python's salted hash)."""
    return count == 1 or int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % count == index


def select_samples(ds: Dataset, suite: Suite, clean: bool = True) -> pd.DataFrame:
    """The samples a job scores: the suite's split, levels (variant levels for non-clean jobs) and limit."""
    df = ds.samples(split=suite.split)  # never another split's samples (run.selection_checks warns)
    levels = suite.levels if clean else suite.variant_levels
    if levels is not None and (df["level"] > 0).any():
        df = df[df["level"].isin(levels)]
    if suite.limit:
        groups = sorted(df["group"].unique())[: int(suite.limit)]
        df = df[df["group"].isin(groups)]
    return df

