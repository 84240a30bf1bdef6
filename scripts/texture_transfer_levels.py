"""Training-free texture transfer vs bicubic per reference level on a CUFED5-style test split.

    .venv/bin/python scripts/texture_transfer_levels.py                       # build from ../shared albums
    .venv/bin/python scripts/texture_transfer_levels.py --dataset /tmp/c5     # an existing cufed5 build

Without ``--dataset`` it builds the split with ``python -m builders.build --recipe cufed5`` into a
temporary folder (never into the repository). Every test sample is scored under the
``refsr-standard`` protocol (Y-PSNR, border crop = scale, mean over images) with its clean
reference (levels L1..LN) and with an irrelevant reference (``builders.variants`` ``irrelevant:POOL``,
drawn for every sample with the dataset seed, as ``python -m builders.variant`` would), and prints
the per-level table plus the three margins of issue 5's done-when criterion and the runtime per image.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.protocol import load_protocol  # noqa: E402
from builders.images import read_rgb  # noqa: E402
from builders.manifest import Dataset  # noqa: E402
from builders.variants import VariantInput, get_variant, variant_rng  # noqa: E402
from models.registry import create_model  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def build(albums: Path, out: Path, seed: int) -> None:
    cmd = [sys.executable, "-m", "builders.build", "--recipe", "cufed5", "--albums", str(albums),
           "--out", str(out), "--seed", str(seed), "--quiet"]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1)[None].float() / 255


def evaluate_group(root: str, group: str, pool: str, seed: int, kwargs: dict, threads: int):
    """Rows (one per sample and setting, with Y-PSNR) of one test group, and texture_transfer's time."""
    torch.set_num_threads(threads)
    ds = Dataset.open(root)
    protocol = load_protocol("refsr-standard")
    model, bicubic = create_model("texture_transfer", **kwargs).eval(), create_model("bicubic")
    irrelevant = get_variant(f"irrelevant:{pool}")
    g = ds.samples(split="test")
    g = g[(g["group"] == group) & (g["level"] >= 1)].sort_values("level", kind="stable")
    rows, spent = [], {"wall": 0.0, "cpu": 0.0, "calls": 0, "pixels": 0}

    def sr_psnr(m, lr, ref, hr_eval) -> tuple[float, tuple[float, float]]:
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            sr = m(to_tensor(lr), to_tensor(protocol.prepare_ref(ref)))
        dt = time.perf_counter() - t0, time.process_time() - c0
        sr_q = protocol.quantise(sr[0].permute(1, 2, 0))
        return protocol.score(sr_q.numpy(), hr_eval, metrics=["psnr_y"])["psnr_y"], dt

    hr = read_rgb(ds.path(g["hr"].iloc[0]))[0]
    hr_eval, lr = protocol.make_pair(hr, 4)
    base = sr_psnr(bicubic, lr, lr, hr_eval)[0]
    lines = []
    for s in g.itertuples(index=False):
        ref = read_rgb(ds.path(s.ref))[0]
        irr, _ = irrelevant.apply(VariantInput(sample_id=s.sample_id, level=int(s.level), hr=hr, ref=ref),
                                  variant_rng(seed, s.sample_id, irrelevant.name))
        for setting, r in ((f"L{s.level}", ref), ("irrelevant", irr)):
            value, (wall, cpu) = sr_psnr(model, lr, r, hr_eval)
            spent["wall"] += wall
            spent["cpu"] += cpu
            spent["calls"] += 1
            spent["pixels"] += hr_eval.shape[0] * hr_eval.shape[1]
            rows.append(dict(group=group, album=s.album, setting=setting, psnr=value, bicubic=base))
        lines.append(f"  {s.sample_id} {s.album:14s} bicubic {base:6.2f}  {rows[-2]['setting']} "
                     f"{rows[-2]['psnr']:6.2f}  irrelevant {rows[-1]['psnr']:6.2f}")
    return rows, spent, lines


def evaluate(root: Path, pool: str, seed: int, kwargs: dict, threads: int, jobs: int):
    """Every test group, ``jobs`` groups at a time in worker processes; rows and summed time."""
    groups = sorted(Dataset.open(root).samples(split="test")["group"].unique())
    rows, spent = [], {"wall": 0.0, "cpu": 0.0, "calls": 0, "pixels": 0}
    with ProcessPoolExecutor(max(1, jobs)) as pool_ex:
        futures = [pool_ex.submit(evaluate_group, str(root), g, pool, seed, kwargs, threads) for g in groups]
        for fut in futures:
            r, t, lines = fut.result()
            rows += r
            spent = {k: spent[k] + t[k] for k in spent}
            print("\n".join(lines), flush=True)
    return rows, spent


def report(rows: list[dict], spent: dict, threads: int) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    order = sorted(s for s in df.setting.unique() if s.startswith("L")) + ["irrelevant"]
    print("\nrefsr-standard Y-PSNR (dB), mean over images")
    print(f"{'reference':12s} {'n':>3s} {'texture_transfer':>17s} {'bicubic':>8s} {'gain':>7s}")
    mean = {}
    for s in order:
        d = df[df.setting == s]
        mean[s] = (d.psnr.mean(), d.bicubic.mean())
        print(f"{s:12s} {len(d):3d} {d.psnr.mean():17.3f} {d.bicubic.mean():8.3f} {d.psnr.mean() - d.bicubic.mean():+7.3f}")
    bic = df.drop_duplicates("group").bicubic.mean()
    print(f"{'bicubic':12s} {df.group.nunique():3d} {'':17s} {bic:8.3f}")
    l1, irr = mean["L1"][0], mean["irrelevant"][0]
    checks = [("L1 - bicubic", l1 - mean["L1"][1], 0.3),
              ("L1 - irrelevant", l1 - irr, 0.1),
              ("irrelevant - bicubic", irr - mean["irrelevant"][1], -0.05)]
    print("\ndone-when margins (issue 5):")
    for name, value, need in checks:
        print(f"  {name:22s} {value:+.3f} dB  (needs >= {need:+.2f})  {'PASS' if value >= need else 'FAIL'}")
    n = spent["calls"]
    print(f"\ntexture_transfer runtime per image (mean of {n} calls, mean HR {spent['pixels'] / n / 1e3:.0f} "
          f"kpixels, one process, {threads} thread(s)): {spent['cpu'] / n:.2f} s CPU, "
          f"{spent['wall'] / n:.2f} s wall (wall includes waiting on a shared machine)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", help="an existing CUFED5-style build (default: build one into a temp folder)")
    p.add_argument("--albums", default=str(SHARED / "albums"), help="albums to build from without --dataset")
    p.add_argument("--pool", default=str(SHARED / "sr_benchmarks"),
                   help="folder of unrelated images for the irrelevant references (default: Set5 + Set14)")
    p.add_argument("--seed", type=int, default=0, help="build and variant seed")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes, one test group each (default 2)")
    p.add_argument("--kwargs", default="{}", help="texture_transfer keyword arguments as JSON")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="cufed5-") as tmp:
        root = Path(args.dataset) if args.dataset else Path(tmp) / "cufed5"
        if not args.dataset:
            build(Path(args.albums), root, args.seed)
        rows, spent = evaluate(root, args.pool, args.seed, json.loads(args.kwargs), args.threads, args.jobs)
    report(rows, spent, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
