"""One trainer for every zoo model: recipe -> checkpoints -> official-format weights the harness scores.

The loop is the same with one process or under ``torchrun`` (DDP, one process per GPU; gloo on CPU).
Everything a step depends on is a function of (seed, step) or is in the checkpoint (parameters,
optimiser, scaler, RNG states, step = data position), so a run killed at any point and started
again with the same command continues to the same parameters as an uninterrupted run.

Files under ``--out``::

    run.json                  the run: id, command config, recipe, dataset, versions, resumes
    checkpoints/last.pt       the latest checkpoint (atomic; torch.load(weights_only=True))
    log.csv                   one row per logged step (train loss, lr, steps/s) and per validation
    curves.png                loss and validation curves
    <official file name>      the final (or latest) weights, e.g. masa_rec.pth, in the official format
    weights.json              what those files are: run id, step, sha256 of each file (never "official")
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from builders.manifest import Dataset
from core import provenance
from core.files import atomic_write_json, atomic_write_with
from core.seeding import keyed_rng
from models import create_model, get_spec
from models.registry import split_name
from models.weights import (MissingWeights, file_sha256, load_weights, official_path, parse_overrides,
                            resolve_weights, trained_label)

from .adapters import TrainForward
from .losses import Adversarial, TooFewMatches, build_loss, load_vgg19_into, start_step
from .data import StepBatchSampler, TrainCrops, make_loader, steps_per_epoch, train_table
from .recipe import Recipe, load_recipe

CKPT_FORMAT = "refsr-bench-train/1"
LOG_FIELDS = ["step", "epoch", "kind", "loss", "l1", "mse", "perceptual", "texture", "texture_gram", "adversarial",
              "d_loss", "contrastive", "distillation", "lr", "grad_norm", "steps_per_s", "crops_per_s", "psnr_y",
              "ssim_y", "lpips", "bicubic_psnr_y", "elapsed_s"]


@dataclass
class TrainConfig:
    model: str  # a recipe's name: the zoo name[.tag], or a stage of it (c2_matching.teacher)
    dataset: str
    out: str
    recipe: str = "official"
    overrides: dict = field(default_factory=dict)  # dotted recipe keys (iterations, batch_size, ...)
    model_kwargs: dict | None = None  # None: the recipe's (the official architecture)
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 with a gradient scaler)
    workers: int | None = None  # loader processes (default 0 on CPU, 4 on GPU)
    split: str = "train"
    val_dataset: str | None = None  # a dataset folder with a test split (default: --dataset's, if any)
    val_limit: int = 8  # test groups scored per validation
    val_level: int = 1
    val_metrics: tuple = ("psnr_y", "ssim_y")
    log_every: int = 10
    time_limit: float | None = None  # seconds: checkpoint, export and stop (re-run to continue)
    progress: bool = True


# ---------------------------------------------------------------------------------------- helpers
class Dist:
    """This process's place: rank/world from torchrun's environment (one process: 0/1)."""

    def __init__(self, device_name: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local = int(os.environ.get("LOCAL_RANK", "0"))
        want_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
        if device_name.startswith("cuda:"):
            self.device = torch.device(device_name)
        elif want_cuda:
            self.device = torch.device("cuda", self.local)
        else:
            self.device = torch.device("cpu" if device_name in ("auto", "cpu") else device_name)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.active = self.world > 1
        if self.active and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def lr_factor(schedule: dict, step: int, spe: int, base_lr: float) -> float:
    """The recipe's schedule as a pure function of the step (nothing to restore on resume)."""
    kind = schedule.get("type", "constant")
    if kind == "constant":
        return 1.0
    unit = schedule.get("unit", "step")
    t = (step // spe if unit == "epoch" else step) + int(schedule.get("offset", 1 if unit == "epoch" else 0))
    if kind == "cosine":
        period = float(schedule["period"])
        floor = float(schedule.get("eta_min", 0.0)) / base_lr
        return floor + (1 - floor) * (1 + math.cos(math.pi * t / period)) / 2
    if kind == "multistep":
        return float(schedule.get("gamma", 0.1)) ** sum(t >= int(m) for m in schedule["milestones"])
    return float(schedule.get("gamma", 0.5)) ** (t // int(schedule["step_size"]))


@dataclass
class LossTerm:
    name: str
    module: torch.nn.Module
    weight: float
    start: int  # first step at which it counts


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _json_safe(obj):
    return json.loads(json.dumps(obj, default=str))


# ---------------------------------------------------------------------------------------- trainer
class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.dist = Dist(cfg.device)
        self.out = Path(cfg.out)
        self.recipe: Recipe = load_recipe(cfg.model, cfg.recipe, cfg.overrides)
        self.name = self.recipe["model"]  # the zoo model whose files the run writes
        self.arch, self.tag = split_name(self.name)
        self.spec = get_spec(self.arch)
        kwargs = self.recipe["model_kwargs"] if cfg.model_kwargs is None else cfg.model_kwargs
        self.model_kwargs = dict(kwargs or {})

        self.ds = Dataset.open(cfg.dataset)
        self.table = train_table(self.ds, cfg.split)
        r = self.recipe
        self.batch = int(r["batch_size"])
        if self.batch % self.dist.world:
            raise ValueError(f"batch_size {self.batch} does not split over {self.dist.world} processes")
        self.spe = steps_per_epoch(len(self.table), self.batch)
        self.total = r.total_steps(self.spe)
        self.fingerprint = self.ds.fingerprint()

        torch.manual_seed(cfg.seed)
        model = create_model(self.name, **self.model_kwargs)
        self.model = model.to(self.dist.device)
        tag = self.spec.tag(self.tag)
        self.files = {c.role: c.filename for c in (tag.files if tag else ())}
        if not self.files:
            raise ValueError(f"{self.name} has no learned weights to train")
        self.train_roles, frozen = r.roles(list(self.files))
        modules = model.checkpoint_modules()
        from_init = set((r.get("init_from") or {}).get("roles") or ())
        official = [role for role in frozen if role not in from_init]
        # written with the trained roles: a frozen role from init_from's files is part of what the run trained with
        # (stage 3 on a trained extractor: benchmark.run --weights OUT must score net_g with that extractor)
        self.export_roles = self.train_roles + [role for role in frozen if role in from_init]
        if official:  # frozen roles come from their official files (or init_from's)
            paths = {role: official_path(self.arch, self.files[role]) for role in official}
            missing = [f"  {p}  [{role}]" for role, p in paths.items() if not p.is_file()]
            if missing:
                raise MissingWeights(f"{self.name}: the recipe trains {', '.join(self.train_roles)} and keeps the "
                                     f"official files of {', '.join(official)}, which are missing:\n"
                                     + "\n".join(missing) + "\nFetch them (python -m models.pretrained) or set "
                                     "$REFSR_WEIGHTS.")
            load_weights(model, paths)
        for role in self.files:  # frozen, or unused by this stage (C2-Matching's net_g while its extractor trains)
            if role not in self.train_roles:
                modules[role].requires_grad_(False)
        opt = r["optimizer"]
        for prefix in opt.get("freeze") or []:
            for name, p in model.named_parameters():
                if name.startswith(prefix):
                    p.requires_grad_(False)
        trainable = {id(p) for role in self.train_roles for p in modules[role].parameters()}
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) in trainable]
        groups, rest = [], list(named)
        def matches(g: dict, n: str) -> bool:
            return n.startswith(g.get("prefix", "")) and all(c in n for c in g.get("contains") or [])

        for g in opt.get("param_groups") or []:
            mine = [p for n, p in rest if matches(g, n)]
            rest = [(n, p) for n, p in rest if not matches(g, n)]
            groups.append({"params": mine, "lr": float(g["lr"]), "base_lr": float(g["lr"])})
        groups.insert(0, {"params": [p for _, p in rest], "lr": float(opt["lr"]), "base_lr": float(opt["lr"])})
        self.optimizer = torch.optim.Adam([g for g in groups if g["params"]], betas=tuple(opt["betas"]),
                                          eps=float(opt["eps"]), weight_decay=float(opt.get("weight_decay", 0)))
        self.losses = [LossTerm(spec["type"], build_loss(spec, int(r["crop_size"])).to(self.dist.device),
                                float(spec.get("weight", 1.0)), start_step(spec, self.spe)) for spec in r["losses"]]
        for term in self.losses:
            if isinstance(term.module, Adversarial):
                term.module.reduce_grads = _average_grads if self.dist.active else None
                for g in term.module.optimizer.param_groups:
                    g["base_lr"] = g["lr"]
        self.scaler = torch.amp.GradScaler(self.dist.device.type, enabled=cfg.precision == "fp16")
        self.forward = TrainForward(self.model, self.train_roles)
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.forward = DDP(self.forward, device_ids=[self.dist.device.index] if self.dist.device.type == "cuda"
                               else None)
        self.step = 0
        self.run_id = ""
        self.config_key = {"model": cfg.model, "recipe_hash": self.recipe.hash, "dataset": self.fingerprint,
                           "split": cfg.split, "seed": cfg.seed, "model_kwargs": _json_safe(self.model_kwargs),
                           "batch_size": self.batch}
        self.ckpt_path = self.out / "checkpoints" / "last.pt"

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        if not self.dist.main:
            return
        state = {"format": CKPT_FORMAT, "run_id": self.run_id, "step": self.step, "config_key": self.config_key,
                 "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                 "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                 "losses": {str(i): t.module.train_state() for i, t in enumerate(self.losses)
                            if hasattr(t.module, "train_state")},
                 "rng": _rng_state(), "world_size": self.dist.world, "saved": time.time()}
        atomic_write_with(self.ckpt_path, lambda tmp: torch.save(state, tmp))

    def try_resume(self) -> bool:
        if not self.ckpt_path.is_file():
            return False
        state = torch.load(self.ckpt_path, map_location="cpu", weights_only=True)
        if state.get("format") != CKPT_FORMAT:
            raise RuntimeError(f"{self.ckpt_path} is not a benchmark.train checkpoint")
        if state["config_key"] != self.config_key:
            diff = {k: (state["config_key"].get(k), v) for k, v in self.config_key.items()
                    if state["config_key"].get(k) != v}
            raise RuntimeError(f"{self.out} holds a run with other settings {diff} (checkpoint vs now); "
                               f"use another --out, or delete {self.ckpt_path} to start over")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        for i, t in enumerate(self.losses):
            if hasattr(t.module, "load_train_state"):
                t.module.load_train_state(state["losses"][str(i)])
        _set_rng_state(state["rng"])
        self.step, self.run_id = int(state["step"]), state["run_id"]
        return True

    # ------------------------------------------------------------------ export
    def export(self, final: bool) -> dict:
        """Write the trained roles in the official format under ``out`` and check they load strictly."""
        if not self.dist.main:
            return {}
        wrapper = (self.recipe["export"] or {}).get("wrapper")
        written = {}
        for role in self.export_roles:  # the model writes its own official format (SRNTT: TensorLayer .npz)
            path = self.out / self.files[role]
            atomic_write_with(path, lambda tmp, role=role: self.model.write_checkpoint(role, tmp, wrapper))
            written[role] = path
        fresh = create_model(self.name, **self.model_kwargs)  # the harness's loader must take them as-is
        load_weights(fresh, written)
        mods = fresh.checkpoint_modules()
        for role in written:
            mine = self.model.checkpoint_modules()[role].state_dict()
            for k, v in mods[role].state_dict().items():
                if not torch.equal(v.cpu(), mine[k].detach().cpu()):
                    raise RuntimeError(f"exported {written[role]} does not reload to the trained values ({k})")
        info = {"run_id": self.run_id, "model": self.name, "label": "custom (trained by benchmark.train, "
                "not official)", "step": self.step, "total_steps": self.total, "final": final,
                "files": {self.files[r]: {"role": r, "sha256": file_sha256(p)} for r, p in written.items()},
                "dataset": str(self.cfg.dataset), "dataset_hash": self.fingerprint, "recipe": self.recipe.source_file,
                "recipe_hash": self.recipe.hash, "model_kwargs": _json_safe(self.model_kwargs),
                "git_sha": provenance.git_sha()}
        atomic_write_json(self.out / "weights.json", info)
        return info

    # ------------------------------------------------------------------ logging
    def _log_rows(self, rows: list[dict]) -> None:
        if not self.dist.main or not rows:
            return
        path = self.out / "log.csv"
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, LOG_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerows(rows)
        if self._tb is not None:
            for row in rows:
                for k, v in row.items():
                    if k not in ("step", "epoch", "kind") and v not in (None, ""):
                        self._tb.add_scalar(f"{row['kind']}/{k}", float(v), int(row["step"]))

    def _trim_log(self) -> None:
        """Drop log rows past the resumed step (they are recomputed)."""
        path = self.out / "log.csv"
        if not self.dist.main or not path.is_file():
            return
        def kept(row: dict) -> bool:  # a row cut short by a kill is dropped with the steps it belongs to
            try:
                return int(row["step"]) <= self.step and row.get("elapsed_s") not in (None, "")
            except (TypeError, ValueError):
                return False

        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if kept(r)]
        def write(tmp):
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, LOG_FIELDS, extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)
        atomic_write_with(path, write)

    def _init_from(self) -> dict | None:
        """A fresh run starts the ``vgg19_init`` submodules from ImageNet VGG19, then, with ``init_from``,
        ``roles`` (default: the trained ones) from those files."""
        vgg = {}
        for name in self.recipe.get("vgg19_init") or []:
            path = load_vgg19_into(self.model.get_submodule(name))
            vgg[name] = {"path": str(path), "sha256": file_sha256(path)}
        spec = self.recipe.get("init_from")
        if not spec:
            return {"vgg19_init": vgg} if vgg else None
        roles = list(spec.get("roles") or self.train_roles)
        src = spec.get("weights", "official")
        if src == "official":
            resolved = resolve_weights(spec["model"])
            files = {role: resolved.files[role] for role in roles}
            label = resolved.label
        else:
            arch, tag = split_name(spec["model"])
            names = {c.role: c.filename for c in get_spec(arch).tag(tag).files}
            files = parse_overrides(weights_path(src, arch), roles, names)
            label = trained_label(files, {role: file_sha256(p) for role, p in files.items()}) or "custom"
        load_weights(self.model, files)
        return {"model": spec["model"], "label": label, **({"vgg19_init": vgg} if vgg else {}),
                "files": {role: {"path": str(p), "sha256": file_sha256(p)} for role, p in files.items()}}

    def _write_run_json(self, resumed: bool, init: dict | None = None) -> None:
        if not self.dist.main:
            return
        path = self.out / "run.json"
        info = json.loads(path.read_text()) if path.is_file() else {}
        info.update({"run_id": self.run_id, "config": _json_safe(asdict(self.cfg)), "recipe": self.recipe.data,
                     "recipe_file": self.recipe.source_file, "dataset_hash": self.fingerprint,
                     "train_samples": len(self.table), "steps_per_epoch": self.spe, "total_steps": self.total,
                     "seeds": {"seed": self.cfg.seed, "data": f"keyed_rng({self.cfg.seed}, 'sample'|'epoch', ...)"},
                     "world_size": self.dist.world, "device": str(self.dist.device),
                     "versions": provenance.versions(), "git_sha": provenance.git_sha()})
        if init:
            info["init_from"] = init
        info.setdefault("starts", []).append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "step": self.step,
                                              "resumed": resumed, "world_size": self.dist.world})
        atomic_write_json(path, info)

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict:
        cfg = self.cfg
        src = cfg.val_dataset or cfg.dataset
        ds = Dataset.open(src)
        df = ds.samples(split="test")
        if df.empty:
            return {}
        if (df["level"] > 0).any() and cfg.val_level:
            df = df[df["level"] == cfg.val_level]
        groups = sorted(df["group"].unique())[: cfg.val_limit]
        df = df[df["group"].isin(groups)]
        if self.recipe.get("pairs"):  # a correspondence stage: no SR to score (its other roles are untrained)
            return self._validate_pairs(ds, df)
        return evaluate_model(self.model, ds, df, self.recipe["protocol"], self.spec.scale, self.dist.device,
                              list(cfg.val_metrics))

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        cfg, r = self.cfg, self.recipe
        self.out.mkdir(parents=True, exist_ok=True)
        resumed = self.try_resume()
        init = None if resumed else self._init_from()
        if not self.run_id:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            key = hashlib.sha256(json.dumps(self.config_key, sort_keys=True).encode()).hexdigest()[:8]
            self.run_id = f"{cfg.model}-{self.ds.name}-{stamp}-{key}"
        if self.dist.active:  # every process continues from rank 0's view
            obj = [self.run_id, self.step]
            dist.broadcast_object_list(obj, src=0)
            self.run_id, self.step = obj
        self._tb = None
        if self.dist.main:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.out / "tb"))
            except Exception:  # tensorboard not installed: the CSV is the log
                self._tb = None
        self._trim_log()
        self._write_run_json(resumed, init)
        if self.step >= self.total:
            info = self.export(final=True)
            self.dist.close()
            return {"run_id": self.run_id, "step": self.step, "resumed": resumed, "weights": info}

        device = self.dist.device
        ref_size = int(r["ref_size"] or r["crop_size"])
        crops = TrainCrops(self.ds, self.table, r["protocol"], self.spec.scale, int(r["crop_size"]), ref_size,
                           r["augment"], cfg.seed, self.spe, cfg.split, pairs=r.get("pairs"))
        sampler = StepBatchSampler(len(self.table), self.batch, cfg.seed, self.step, self.total,
                                   self.dist.rank, self.dist.world)
        workers = cfg.workers if cfg.workers is not None else (4 if device.type == "cuda" else 0)
        loader = make_loader(crops, sampler, workers, pin_memory=device.type == "cuda")
        clip = r["grad_clip"]
        every_ckpt = int(r["checkpoint_every"])
        every_val = int(r["validate_every"] or 0)
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        if device.type == "cpu" or cfg.precision == "fp32":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False

        bar = None
        if self.dist.main and cfg.progress:
            from tqdm import tqdm
            bar = tqdm(total=self.total, initial=self.step, desc=f"train {cfg.model}", unit="step", file=sys.stderr)
        t_start = time.perf_counter()
        t_log, n_log, wait_data, acc = time.perf_counter(), 0, 0.0, {}
        t_data = time.perf_counter()
        stopped_early = False
        self.forward.train()
        for batch in loader:
            wait_data += time.perf_counter() - t_data
            lr_t = batch["lr"].to(device, non_blocking=True)
            ref_t = batch["ref"].to(device, non_blocking=True)
            hr_t = batch["hr"].to(device, non_blocking=True)
            extras = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k not in ("hr", "lr", "ref")}
            groups = [(g, r["schedule"]) for g in self.optimizer.param_groups]
            groups += [(g, t.module.schedule or r["schedule"]) for t in self.losses
                       if isinstance(t.module, Adversarial) and t.module.scheduled for g in t.module.optimizer.param_groups]
            for g, schedule in groups:
                g["lr"] = g["base_lr"] * lr_factor(schedule, self.step, self.spe, g["base_lr"])
            self.optimizer.zero_grad(set_to_none=True)
            active = [t for t in self.losses if self.step >= t.start]
            needs = tuple(sorted({n for t in active for n in t.module.needs}))
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                sr, aux = self.forward(lr_t, ref_t, needs, extras)
            sr = sr.float() if torch.is_tensor(sr) else {k: v.float() for k, v in sr.items()}
            aux = {"ref": ref_t, **extras, **aux}  # the batch's extras (a pair's ground truth) for the losses
            parts, logged = {}, {}
            for t in active:  # discriminators first: the generator is scored by the updated one
                if isinstance(t.module, Adversarial):
                    seed = int(keyed_rng(cfg.seed, "gan", str(self.step), str(self.dist.rank)).integers(2 ** 62))
                    logged["d_loss"] = t.module.discriminator_step(sr, hr_t, seed)
            for t in active:
                parts[t.name] = parts.get(t.name, 0.0) + t.weight * t.module(sr, hr_t, aux)
            loss = sum(parts.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {self.step}")
            self.scaler.scale(loss).backward()
            gnorm = None
            if clip:
                self.scaler.unscale_(self.optimizer)
                gnorm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(clip)))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            n_log += 1
            for k, v in {"loss": loss, **parts, **logged}.items():
                acc[k] = acc.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            if self.step % cfg.log_every == 0 or self.step == self.total:
                dt = time.perf_counter() - t_log
                row = {"step": self.step, "epoch": self.step // self.spe, "kind": "train",
                       **{k: v / n_log for k, v in acc.items()}, "lr": self.optimizer.param_groups[0]["lr"],
                       "grad_norm": gnorm if gnorm is not None else "", "steps_per_s": n_log / dt,
                       "crops_per_s": n_log * self.batch / max(wait_data, 1e-9),
                       "elapsed_s": time.perf_counter() - t_start}
                self._log_rows([row])
                t_log, n_log, wait_data, acc = time.perf_counter(), 0, 0.0, {}
            timed_out = cfg.time_limit is not None and time.perf_counter() - t_start >= cfg.time_limit
            if cfg.time_limit is not None and self.dist.active:  # every process stops at the same step
                flag = torch.tensor([1 if timed_out else 0], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                timed_out = bool(flag.item())
            if self.step % every_ckpt == 0 or self.step == self.total or timed_out:
                self.save_checkpoint()
                self.dist.barrier()
            if self.dist.main and every_val and self.step % every_val == 0 and self.step < self.total:
                self._validation_row(t_start)
                plot_curves(self.out / "log.csv", self.out / "curves.png")  # the curves so far
                self.forward.train()
            if timed_out:
                stopped_early = self.step < self.total
                break
            t_data = time.perf_counter()
        if bar is not None:
            bar.close()
        result = {"run_id": self.run_id, "step": self.step, "total_steps": self.total, "resumed": resumed,
                  "stopped_early": stopped_early}
        if self.dist.main:
            result["validation"] = self._validation_row(t_start)
            result["weights"] = self.export(final=not stopped_early)
            plot_curves(self.out / "log.csv", self.out / "curves.png")
        if self._tb is not None:
            self._tb.close()
        self.dist.barrier()
        self.dist.close()
        return result

    def _validate_pairs(self, ds: Dataset, samples) -> dict:
        """The recipe's losses on held-out warped pairs: the central crop_size crop of each test HR under a
        homography keyed by its sample id (the same pairs in every validation and every run; the official
        stages validate the same way on CUFED5 with seeded homographies)."""
        from builders.images import read_rgb

        from ..protocol import load_protocol
        from .data import warped_sample

        r, device, crop = self.recipe, self.dist.device, int(self.recipe["crop_size"])
        protocol, forward = load_protocol(r["protocol"]), TrainForward(self.model, self.train_roles)
        sums: dict[str, float] = {}
        n = 0
        for s in samples.itertuples(index=False):
            hr = read_rgb(ds.path(s.hr))[0]
            y, x = max(0, (hr.shape[0] - crop) // 2), max(0, (hr.shape[1] - crop) // 2)
            hr = np.ascontiguousarray(hr[y:y + crop, x:x + crop])
            b = warped_sample(hr, r["pairs"], protocol, self.spec.scale, keyed_rng(0, "val-pair", str(s.sample_id)))
            b = {k: v[None].to(device) for k, v in b.items()}
            with torch.no_grad():
                out, _ = forward(b["lr"], b["ref"], (), b)
                try:
                    vals = {t.name: float(t.weight * t.module(out, b["hr"], b)) for t in self.losses}
                except TooFewMatches:  # a test image smaller than the crop: too little overlap to score
                    continue
            for k, v in {**vals, "loss": sum(vals.values())}.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
        return {k: v / n for k, v in sums.items()} if n else {}

    def _validation_row(self, t_start: float) -> dict:
        self.model.eval()
        vals = self.validate()
        if vals:
            self._log_rows([{"step": self.step, "epoch": self.step // self.spe, "kind": "val", **vals,
                             "elapsed_s": time.perf_counter() - t_start}])
        return vals


def weights_path(src: str, arch: str) -> Path:
    """``init_from.weights``: a path as given, else a bare file name under $REFSR_WEIGHTS[/<arch>] (where
    torchvision's ImageNet files live, e.g. vgg16-397923af.pth); never downloaded."""
    path = Path(src).expanduser()
    if path.exists() or path.is_absolute() or len(path.parts) > 1:
        return path
    from core.paths import weights_dir

    for cand in (weights_dir() / path, weights_dir() / arch / path):
        if cand.is_file():
            return cand
    where = (f"; torchvision publishes it at https://download.pytorch.org/models/{src}"
             if re.fullmatch(r"\w+-[0-9a-f]{8}\.pth", src) else "")
    raise MissingWeights(f"init_from file {src} not found (looked in ., {weights_dir()}, {weights_dir() / arch}); "
                         f"place it there (nothing is downloaded){where}")


def _average_grads(module: torch.nn.Module) -> None:
    """Mean of a module's gradients over the torchrun processes (the discriminator is not DDP-wrapped)."""
    world = dist.get_world_size()
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


def evaluate_model(model, ds: Dataset, samples, protocol: str, scale: int, device, metrics: list[str]) -> dict:
    """Mean metrics of ``model`` on ``samples`` through the harness's own stages (protocol pair,
    reference preparation, size fitting, quantisation, scoring), plus bicubic's PSNR-Y for scale."""
    from ..evaluation import fit_reference, read_sample, run_model
    from ..metrics import availability
    from ..protocol import load_protocol
    from core.resize import pil_bicubic

    p = load_protocol(protocol)
    ok = [m for m in metrics if availability([m], device)[m][0]]
    sums: dict[str, float] = {}
    n = 0
    was_training = model.training
    model.eval()
    for s in samples.itertuples(index=False):
        hr, ref = read_sample(ds, s)
        hr_eval, lr = p.make_pair(hr, scale)
        ref, _ = fit_reference(model.spec, lr, p.prepare_ref(ref, scale), device=device)
        sr, _ = run_model(model, lr, ref, device)
        vals = p.score(p.quantise(sr[0].permute(1, 2, 0).cpu().numpy()), hr_eval, metrics=ok, device=device,
                       scale=scale)
        up = pil_bicubic(lr, (lr.shape[0] * scale, lr.shape[1] * scale)).astype(np.float64)
        vals["bicubic_psnr_y"] = p.score(up, hr_eval if hr_eval.shape == up.shape else
                                         hr_eval[:up.shape[0], :up.shape[1]], metrics=["psnr_y"], scale=scale)["psnr_y"]
        for k, v in vals.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        n += 1
    model.train(was_training)
    return {k: v / n for k, v in sums.items()} if n else {}


def plot_curves(log_csv: Path, out_png: Path) -> None:
    """Training loss and validation PSNR-Y against the step."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import pandas as pd
    except ImportError:
        return
    if not Path(log_csv).is_file():
        return
    df = pd.read_csv(log_csv)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    tr = df[df["kind"] == "train"]
    terms = [c for c in ("loss", "l1", "mse", "perceptual", "texture", "texture_gram", "adversarial", "d_loss",
                         "contrastive", "distillation")
             if c in tr and tr[c].notna().any()]
    for c in terms if len(terms) > 2 else ["loss"]:  # one loss term: the total is that term
        axes[0].plot(tr["step"], tr[c], label=c)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training loss (G terms weighted; d_loss = D)")
    axes[0].set_yscale("symlog" if (tr[terms] <= 0).any().any() else "log", **({"linthresh": 1e-4} if
                       (tr[terms] <= 0).any().any() else {}))
    if len(terms) > 2:
        axes[0].legend(fontsize=7)
    va = df[df["kind"] == "val"]
    if not va.empty and "psnr_y" in va:
        axes[1].plot(va["step"], va["psnr_y"], marker="o", label="model")
        if "bicubic_psnr_y" in va:
            axes[1].plot(va["step"], va["bicubic_psnr_y"], ls="--", marker="x", label="bicubic")
        axes[1].legend()
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("validation PSNR-Y (dB)")
    fig.tight_layout()
    atomic_write_with(out_png, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
