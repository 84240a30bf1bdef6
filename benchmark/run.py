"""Run a benchmark suite: every model × dataset × variant, scored under one declared protocol.

Examples:
  python -m benchmark.run --suite demo                  # the embedded default, minutes on a CPU
  python -m benchmark.run --suite full --device cuda    # everything present, on the GPU
  python -m benchmark.run --models bicubic --datasets /data/Set5 --protocol basicsr
  python -m benchmark.run --suite robustness --dry-run  # print the job grid, run nothing
  python -m benchmark.run --list-models                 # the zoo and the status of its weights

A run folder (default ./runs/<suite>) holds results.parquet (one row per model, weights, dataset,
split, variant, level, image and metric, with provenance), timings.parquet, profiles.parquet and
run.json (suite, protocol, versions, git commit, device). Re-running the same command resumes:
finished images are not recomputed and no row is duplicated. At the end the leaderboard is
published to <out>/leaderboard/ (CSV, Markdown, PNG plots; --leaderboards DIR elsewhere).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from core import provenance
from core.files import atomic_write_json, output_problem

from . import dataset_registry
from .suite import SuiteError, available_suites, jobs, load_suite, profile_sizes, suite_description

# torch, pandas and the model files are imported where a run needs them: --help and --list-* stay fast

ADHOC = {"name": "custom", "models": ["bicubic"], "datasets": ["demo"], "split": "test", "levels": "all",
         "variants": ["clean"], "protocol": "refsr-standard", "drift_protocols": [],
         "metrics": ["psnr_y", "ssim_y", "psnr_rgb", "lpips"], "seed": 0, "profile": None,
         "description": "ad-hoc run from the command line"}


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def build_parser() -> argparse.ArgumentParser:
    from builders.variants import variant_usage
    from models import get_spec, list_models

    from .metrics import metrics_help

    p = argparse.ArgumentParser(prog="python -m benchmark.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what to run")
    g.add_argument("--suite", help=f"built-in suite ({', '.join(available_suites())}) or a suite YAML file. "
                                    "Without --suite, --models/--datasets make an ad-hoc suite named 'custom'")
    g.add_argument("--models", help="comma-separated models as name[.tag] (weight sets: "
                                    f"{', '.join(list_models(tags=True))}), or all-runnable")
    g.add_argument("--model-module", metavar="PKG.MOD:FACTORY[,...]",
                   help="your own model, not registered: FACTORY() returns an nn.Module or a function "
                        "(lr, ref) -> sr on RGB tensors in [0,1]; scored beside --models, named FACTORY")
    g.add_argument("--weights", metavar="[MODEL[:ROLE]=]PATH,...",
                   help="score your own weight files instead of the official ones: a file (one model, one "
                        "file), a folder holding the model's file names, or MODEL[:ROLE]=PATH items. Rows "
                        "record each file's sha256 and say 'official' only for the official hash")
    g.add_argument("--datasets", help="comma-separated dataset names from datasets/*.yaml "
                                      f"({', '.join(dataset_registry.known())}), dataset folders, or all-present")
    g.add_argument("--variants", help=f"comma-separated reference variants ({'; '.join(variant_usage())})")
    g.add_argument("--levels", help="comma-separated reference levels (1 = most similar) or 'all'")
    g.add_argument("--protocol", help="refsr-standard (default), ttsr, masa, basicsr, or a protocol YAML file")
    g.add_argument("--metrics", help=f"comma-separated metrics: {metrics_help()}")
    g.add_argument("--limit", type=int, help="evaluate only the first N groups of each dataset")
    g.add_argument("--seed", type=int, help="seed for the reference variants (default: the suite's)")
    h = p.add_argument_group("how")
    h.add_argument("--download", action="store_true",
                   help="before scoring, download the official weight files the run's models need (and the "
                        "MUSIQ/MANIQA files when those metrics are asked for) that are not present yet: checked "
                        "against the model, moved into $REFSR_WEIGHTS, hash recorded as official. Never done "
                        "without this flag. With --dry-run: download only")
    h.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    h.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16", "fp16"],
                   help="fp32 = float32 with TF32 off (set explicitly: torch's CUDA default uses TF32 for "
                        "convolutions); tf32; bf16/fp16 = forward under autocast. Recorded in every row (dtype)")
    h.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")
    h.add_argument("--jobs", type=int, default=None, help="processes for building a missing demo dataset")
    h.add_argument("--batch-size", type=int, default=1, metavar="B",
                   help="up to B same-size images per forward for models that allow it (spec batchable: "
                        f"{', '.join(n for n in list_models() if get_spec(n).batchable)}); rows equal batch 1's, "
                        "timings are per image (batch time / B)")
    h.add_argument("--max-memory", type=float, default=None, metavar="GIB",
                   help="memory guard: an image whose forward a model's cost model puts above GIB is a failed row "
                        "('would need ~X GiB') instead of an out-of-memory kill (default: the memory free when "
                        "it runs; references over a model's max_ref_side are downsized first, noted in the rows)")
    h.add_argument("--no-profile", action="store_true", help="skip the runtime/FLOPs/params/memory profiles")
    h.add_argument("--shard", default=None, metavar="K/N",
                   help="score only shard K of N (0-based; images assigned by a stable hash). Run every shard "
                        "with the same --out; each merges what is there when it ends (under a lock), so the last "
                        "one leaves the complete results. Without --shard, torchrun's RANK/WORLD_SIZE or a Slurm "
                        "array's SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT are used when set")
    h.add_argument("--launcher", default="none", choices=["none", "slurm", "local"],
                   help="slurm: submit --shards shards as a Slurm job array through submitit (each task runs this "
                        "command with --shard K/N), wait, then publish once; local: the same with submitit's local "
                        "executor (processes on this machine). Needs `pip install submitit`")
    h.add_argument("--shards", type=int, default=2, help="number of array tasks for --launcher (default 2)")
    h.add_argument("--slurm", metavar="KEY=VALUE,...",
                   help="submitit parameters for --launcher, e.g. slurm_partition=gpu,gpus_per_node=1,timeout_min=240")
    o = p.add_argument_group("output")
    o.add_argument("--out", help="run folder (default: runs/<suite>); an existing one is resumed")
    o.add_argument("--fresh", action="store_true", help="discard an existing run folder's results first")
    o.add_argument("--save-sr", action="store_true",
                   help="write every SR output as a PNG (uint8, as scored) under <out>/sr/<model>/<dataset>/<variant>/; "
                        "python -m benchmark.score --sr <that folder> scores it again")
    o.add_argument("--leaderboards", default=None, metavar="DIR",
                   help="where to publish the leaderboard (default: <out>/leaderboard)")
    o.add_argument("--no-publish", action="store_true", help="do not write the leaderboard")
    i = p.add_argument_group("information")
    i.add_argument("--dry-run", action="store_true", help="print the job grid and exit")
    i.add_argument("--list-models", action="store_true", help="print the model zoo with weight status")
    i.add_argument("--list-suites", action="store_true", help="print the built-in suites")
    i.add_argument("--list-datasets", action="store_true", help="print declared datasets and whether present")
    return p


def paper_summary(suite) -> str:
    """Each model's paper protocol and the published figure its rows are compared with."""
    from .papers import load_papers

    papers = load_papers()
    lines = [f"paper protocols (benchmark/papers.yaml); every model also runs under {suite.protocol}:"]
    stood_in = {v: k for k, v in (suite.stand_in or {}).items() if v in suite.datasets}
    for m in suite.models:
        e = papers[m]
        lines.append(f"  {m:<14} protocol {e.protocol}: {e.protocol_source}")
        if e.protocol_note:
            lines.append(f"  {'':<14} note: {e.protocol_note}")
        for d in suite.datasets:
            fig = e.figure(stood_in.get(d, d))
            shown = (fig.text() + (f" [{d} stands in for {fig.dataset}]" if fig.dataset != d else "")
                     if fig else "none" + (f": {e.published_note}" if e.published_note else ""))
            lines.append(f"  {'':<14} published {shown}")
    return "\n".join(lines)


def list_models_table() -> str:
    """The zoo: one line per weight set, then the files it loads and whether each is present."""
    from core.paths import weights_dir
    from models import get_spec, list_models
    from models.fetch import source
    from models.weights import official_path, weights_status

    lines = [f"weights folder: {weights_dir()} (set $REFSR_WEIGHTS)", "",
             f"{'model[.tag]':<20} {'scale':>5}  {'paper':<40} weights"]
    for arch in list_models():
        spec = get_spec(arch)
        paper = spec.paper if len(spec.paper) <= 40 else spec.paper[:39] + "…"
        for full, tag in zip(spec.tag_names(), spec.tags or (None,)):
            lines.append(f"{full:<20} {spec.scale:>5}  {paper:<40} {weights_status(full)}")
            if tag is not None and tag.description:
                lines.append(f"{'':<28}{tag.description}")
            missing = []
            for ck in tag.files if tag is not None else ():
                present = official_path(arch, ck.filename).is_file()
                missing += [] if present else [source(ck)[0] in ("http", "drive")]
                where = f"from {ck.url}" if ck.url else "not published"
                lines.append(f"{'':<28}{'found  ' if present else 'missing'} {arch}/{ck.filename}  [{ck.role}]  {where}")
            if any(missing):  # something the fetcher can get
                rest = "" if all(missing) else " (gets the files it can; the others by hand)"
                lines.append(f"{'':<28}fetch: python -m models.pretrained --fetch {full}{rest}")
    return "\n".join(lines)


def parse_weights(value: str | None, models: tuple[str, ...]) -> dict[str, object]:
    """``--weights``: model name -> a path, or {role: path}."""
    if not value:
        return {}
    out: dict[str, object] = {}
    for item in _csv(value):
        target, sep, path = item.rpartition("=")
        if not sep:
            if len(models) != 1:
                raise ValueError(f"--weights {item}: name the model (MODEL=PATH) when running {len(models)} models")
            target = models[0]
        model, _, role = target.partition(":")
        if model not in models:
            raise ValueError(f"--weights: {model!r} is not one of the models run ({', '.join(models)})")
        if role:
            current = out.setdefault(model, {})
            if not isinstance(current, dict):
                raise ValueError(f"--weights: give {model} either one PATH or ROLE=PATH items")
            current[role] = path
        else:
            out[model] = path
    return out


def load_model_modules(value: str | None) -> list[tuple[str, object]]:
    """``--model-module pkg.mod:factory,...`` -> [(factory name, factory())]."""
    import importlib

    out = []
    for item in _csv(value) or []:
        module, _, attr = item.partition(":")
        if not attr:
            raise ValueError(f"--model-module {item!r}: write PKG.MODULE:FACTORY")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"--model-module {item!r}: {exc}") from None
        out.append((attr, factory()))
    return out


def _levels_arg(text: str | None):
    if not text or text == "all":
        return text
    try:
        return [int(x) for x in _csv(text)]
    except ValueError:
        raise ValueError(f"--levels {text!r}: give level numbers (1 = most similar), e.g. 1,2,3, or 'all'") from None


def dataset_problems(suite) -> list[str]:
    """Why a suite's datasets cannot be opened, one paragraph each (checked before any work)."""
    from builders.images import IMAGE_EXTENSIONS

    problems = []
    for name in suite.datasets:
        try:
            entry = dataset_registry.resolve(name)
        except Exception as exc:  # noqa: BLE001 - any reason becomes a message
            problems.append(str(exc))
            continue
        if entry.present or entry.build:
            continue
        if entry.path.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in entry.path.rglob("*")):
            problems.append(f"{entry.path} holds images but is not a dataset (no manifest.parquet). Import it "
                            f"first, e.g.: python -m builders.import --layout folder --src {entry.path} --out DIR "
                            f"(layouts: cufed5, wrsr, sun80, folder, pairs), then pass --datasets DIR")
        else:
            problems.append(dataset_registry.absence(entry))
    return problems


def selection_checks(suite) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the suite's split and levels on the present datasets: a selection that
    matches nothing in one dataset is a warning; one that matches nothing in any is an error (a run
    would score nothing and exit 0)."""
    errors, warnings, present = [], [], 0
    for name in suite.datasets:
        entry = dataset_registry.resolve(name)
        if not entry.present:
            continue
        present += 1
        ds = dataset_registry.open_dataset(entry)
        splits = sorted(ds.manifest["split"].unique())
        if suite.split not in splits:
            warnings.append(f"split {suite.split!r} matches no sample of {name} (its splits: {', '.join(splits)})")
            continue
        have = set(ds.samples(split=suite.split)["level"])
        if suite.levels is not None and have - {0} and not set(suite.levels) & have:
            warnings.append(f"levels {list(suite.levels)} match no sample of {name} (its levels: {sorted(have)})")
    if present and len(warnings) == present:
        errors, warnings = [f"nothing to score: {w}" for w in warnings], []
    return errors, [f"warning: {w}; nothing of it will be scored" for w in warnings]


def download_for(suite, weights: dict | None = None, log=print) -> int:
    """``--download``: fetch the official files of the suite's models (not those scored with
    --weights) and of its MUSIQ/MANIQA metrics. 0 when everything that can be fetched is in place
    (files nobody publishes as a download are listed, and those models are reported unavailable as
    usual); 2 when a download failed or a file was refused, before any scoring."""
    import importlib.util

    from models import get_spec
    from models.fetch import FetchError, fetch_weights

    from .metrics.iqa import IQA_FILES, fetch_iqa_weights

    hard, soft = [], []
    for name in suite.models:
        if name in (weights or {}) or not get_spec(name).tags:  # user files, or no learned weights
            continue
        try:
            fetch_weights(name, log=log)
        except FetchError as exc:
            for p in exc.problems:
                (hard if p.fixable_here else soft).append(f"{p.tag}: {p.message}")
    for metric in suite.metrics:
        if metric not in IQA_FILES:
            continue
        if importlib.util.find_spec("pyiqa") is None:
            soft.append(f"{metric}: pyiqa is not installed (`make iqa`), so its weights are not downloaded "
                        f"and the metric is unavailable")
            continue
        try:
            fetch_iqa_weights(metric, log=log)
        except (RuntimeError, OSError) as exc:
            hard.append(str(exc))
    for msg in soft:
        print(f"download: not fetched: {msg}", file=sys.stderr)
    for msg in hard:
        print(f"error: download: {msg}", file=sys.stderr)
    if hard:
        print(f"error: {len(hard)} file(s) could not be downloaded; nothing was scored", file=sys.stderr)
        return 2
    return 0


def resolve_suite(args):
    models = _csv(args.models)
    if models is None and args.model_module:
        models = []  # only the --model-module ones
    overrides = {"models": models, "datasets": _csv(args.datasets), "variants": _csv(args.variants),
                 "levels": _levels_arg(args.levels),
                 "protocol": args.protocol, "metrics": _csv(args.metrics), "limit": args.limit, "seed": args.seed}
    if args.suite:
        return load_suite(args.suite, **overrides)
    from .suite import validate

    raw = dict(ADHOC)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return validate(raw, source="command line")


def shard_from_launcher(text: str | None, env=os.environ) -> tuple[int, int]:
    """``--shard K/N``, else torchrun's ``RANK``/``WORLD_SIZE``, else a Slurm array task, else 0/1."""
    if text:
        return parse_shard(text)
    if int(env.get("WORLD_SIZE", "1")) > 1:
        return parse_shard(f"{env['RANK']}/{env['WORLD_SIZE']}")
    if "SLURM_ARRAY_TASK_COUNT" in env:
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        return parse_shard(f"{int(env['SLURM_ARRAY_TASK_ID']) - first}/{env['SLURM_ARRAY_TASK_COUNT']}")
    return 0, 1


def launcher_device(name: str, env=os.environ) -> str:
    """``auto`` under torchrun on a GPU machine means this rank's GPU (``LOCAL_RANK``)."""
    import torch

    if name == "auto" and "LOCAL_RANK" in env and torch.cuda.is_available():
        return f"cuda:{int(env['LOCAL_RANK']) % torch.cuda.device_count()}"
    return name


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes K/N, e.g. 0/4, got {text!r}") from None
    if not 0 <= k < n:
        raise ValueError(f"--shard {text}: shards count from 0, so K must be in 0..{n - 1}")
    return k, n


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_models:
        print(list_models_table())
        return 0
    if args.list_suites:
        for name in available_suites():
            print(f"{name:<12} {suite_description(name)}")
        return 0
    if args.list_datasets:
        for name, e in dataset_registry.known().items():
            state = "present" if e.present else ("built on first use" if e.build else "absent")
            print(f"{name:<10} {state:<19} {e.path}")
        return 0
    for option, value, ok in (("--threads", args.threads, lambda v: v >= 1), ("--jobs", args.jobs, lambda v: v >= 1),
                              ("--max-memory", args.max_memory, lambda v: v > 0)):
        if value is not None and not ok(value):
            print(f"error: {option} {value}: must be {'> 0 (GiB)' if option == '--max-memory' else '>= 1'}",
                  file=sys.stderr)
            return 2
    if not (args.suite or args.models or args.datasets):
        args.suite = "demo"
    try:
        suite = resolve_suite(args)
    except (SuiteError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        weights = parse_weights(args.weights, suite.models)
        external = load_model_modules(args.model_module)
        shard = shard_from_launcher(args.shard)
        if args.fresh and shard[1] > 1:
            raise ValueError("--fresh with shards: each shard would delete the rows of the others; empty the run "
                             "folder once before starting them")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = dataset_problems(suite)
    errors, warnings = selection_checks(suite) if not problems else ([], [])
    if problems or errors:
        print("error: " + "\n\nerror: ".join(problems + errors), file=sys.stderr)
        return 2
    for warning in warnings:
        print(warning, file=sys.stderr)
    for absent, used in (suite.stand_in or {}).items():
        if used in suite.datasets and absent not in suite.datasets:
            print(f"note: {absent} is not present at {dataset_registry.resolve(absent).path}: {used} stands in "
                  f"for it (suite stand_in)", file=sys.stderr)
    if args.download:
        status = download_for(suite, weights)
        if status:
            return status
    if external:
        from dataclasses import replace

        suite = replace(suite, models=suite.models + tuple(n for n, _ in external))
    grid = jobs(suite)
    if args.dry_run:
        print(f"suite {suite.name} v{suite.version}: {len(grid)} jobs, protocol {suite.protocol}, "
              f"levels {list(suite.levels) if suite.levels else 'all'}, metrics {', '.join(suite.metrics)}")
        from models.weights import weights_status

        for j in grid:
            print(f"  {j.model:<18} {j.dataset:<12} {j.variant:<12} {j.protocol or suite.protocol}")
        if suite.paper_protocols:
            print(paper_summary(suite))
        for m in suite.models:
            if m not in dict(external):
                print(f"weights {m}: {weights_status(m)}")
        return 0
    if args.launcher != "none":
        return launch_shards(suite, args, sys.argv[1:] if argv is None else argv)
    return execute(suite, args, weights, external, shard)


def launch_shards(suite, args, argv: list[str]) -> int:
    """``--launcher``: the shards as a submitit array, then the leaderboard from the merged results."""
    from .launch import launch, parse_options

    if args.shards < 1:
        print(f"error: --shards {args.shards}: give at least 1", file=sys.stderr)
        return 2
    run_dir = Path(args.out or Path("runs") / suite.name)
    if args.fresh and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    try:
        launch([a for a in argv if a != "--fresh"], run_dir, args.shards, args.launcher, parse_options(args.slurm))
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.no_publish:
        from .publish import publish

        print(f"leaderboard: {publish(run_dir, args.leaderboards)}")
    print(f"results: {run_dir / 'results.parquet'}")
    return 0


def execute(suite, args, weights: dict | None = None, external: list | None = None,
            shard: tuple[int, int] = (0, 1)) -> int:
    import pandas as pd
    import torch

    from .device import DeviceError, describe, select_device, set_precision
    from .evaluation import Evaluator, RunConfig, wrap_model
    from .profile import profile_model
    from .publish import publish
    from .results import ResultStore, atomic_to_parquet, save_timings

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = select_device(launcher_device(args.device))
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    flags = set_precision(args.precision)
    run_dir = Path(args.out or Path("runs") / suite.name)
    problem = output_problem(run_dir)
    if problem:
        print(f"error: --out: {problem}", file=sys.stderr)
        return 2
    if args.fresh and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    from .protocol import load_protocol

    proto = load_protocol(suite.protocol)
    info = {"suite": suite.as_dict(), "protocol": proto.as_dict(), "protocol_hash": proto.hash,
            "git_sha": provenance.git_sha(), "versions": provenance.versions(), "machine": provenance.machine(),
            "device": describe(device), "precision": args.precision, "precision_flags": flags,
            "batch_size": args.batch_size, "command": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    info["shard"] = list(shard)
    prev = run_dir / "run.json"
    if prev.is_file() and json.loads(prev.read_text()).get("suite") != json.loads(json.dumps(info["suite"])):
        print(f"error: {run_dir} holds a run of a different suite configuration; use --fresh or --out", file=sys.stderr)
        return 2
    # shards write their own run and timing records; shard 0 also writes run.json (the configuration)
    mine = run_dir / "shards" / f"run-{shard[0]}-of-{shard[1]}.json" if shard[1] > 1 else prev
    if shard[0] == 0:
        atomic_write_json(prev, info)
    print(f"run {suite.name}: {len(jobs(suite))} jobs on {describe(device)}, protocol {proto.name}; folder {run_dir}")
    for name in suite.datasets:  # build the demo (or fail clearly) before the model loop
        dataset_registry.open_dataset(dataset_registry.resolve(name), jobs=args.jobs or 2)
    cfg = RunConfig(suite=suite, device=device, run_dir=run_dir, shard=shard,
                    weights=weights or {}, save_sr=args.save_sr, precision=args.precision,
                    batch_size=args.batch_size, max_memory_gib=args.max_memory)
    models = {name: wrap_model(obj, device, name=name) for name, obj in external or []}
    evaluator = Evaluator(cfg, ResultStore(run_dir), models=models)
    t0 = time.perf_counter()
    df = evaluator.run(jobs(suite))
    wall = time.perf_counter() - t0
    res = evaluator.out
    if res.timings:
        save_timings(run_dir, res.timings, shard)
    profiles = []
    if suite.profile and not args.no_profile and shard[0] == 0:  # profiled once, by shard 0
        runnable = [m for m in suite.models if m not in res.unavailable_models and m not in models]
        for size in profile_sizes(suite.profile):
            for name in runnable:
                print(f"profiling {name} at LR {size['lr']} / Ref {size['ref']} …")
                profiles.append(profile_model(name, device, tuple(size["lr"]), tuple(size["ref"]),
                                              warmup=size.get("warmup", 1), runs=size.get("runs", 3)).as_dict())
        atomic_to_parquet(pd.DataFrame(profiles), run_dir / "profiles.parquet")
    info.update({"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "eval_wall_s": wall,
                 "forward_s_this_session": float(sum(t["forward_s"] for t in res.timings)),
                 "images_this_session": len(res.timings), "rows": len(df),
                 "failed_rows": int((df["status"] == "failed").sum()),
                 "unavailable_models": res.unavailable_models})
    atomic_write_json(mine, info)
    for m, why in res.unavailable_models.items():
        print(f"not scored: {m}: {why}")
    if not args.no_publish:
        out = publish(run_dir, args.leaderboards)
        print((out / "README.md").read_text().split("## PSNR-Y by reference level")[0])
        print(f"leaderboard: {out}")
    print(f"results: {run_dir / 'results.parquet'} ({len(df)} rows, {info['failed_rows']} failed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
