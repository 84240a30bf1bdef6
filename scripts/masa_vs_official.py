"""Speed of our MASA against the official code on CPU (not a test: a ratio measured in one process).

Usage: python scripts/masa_vs_official.py /path/to/MASA-SR [--repeats N] [--lr 128] [--ref 512]

Both networks get the same weights (official random init) and the same inputs (LR 128x128, Ref
512x512, Ref_down = bicubic /4, as in the MASA-SR paper's runtime table). Calls alternate
(ours, official, ours, ...) after a warm-up so machine load hits both alike; prints the median of
each, their ratio and the largest output difference.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models import create_model  # noqa: E402


def load_official(repo: Path) -> torch.nn.Module:
    """The official ``MASA`` class built as its test script does (nf=64, x4, one neighbour)."""
    path = repo / "models" / "archs" / "MASA_arch.py"
    spec = importlib.util.spec_from_file_location("official_masa_arch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MASA(types.SimpleNamespace(input_nc=3, nf=64, sr_scale=4, num_nbr=1)).eval()


def timed(fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("official_repo", type=Path, help="checked-out dvlab-research/MASA-SR")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--lr", type=int, default=128, help="LR side")
    parser.add_argument("--ref", type=int, default=512, help="reference side")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # official: meshgrid/align_corners notices

    torch.manual_seed(0)
    official = load_official(args.official_repo)
    ours = create_model("masa").eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    lr = torch.rand(1, 3, args.lr, args.lr)
    ref = torch.rand(1, 3, args.ref, args.ref)
    ref_down = F.interpolate(ref, scale_factor=0.25, mode="bicubic")
    runs = {"ours": lambda: ours.forward_official(lr, ref, ref_down), "official": lambda: official(lr, ref, ref_down)}

    times: dict[str, list[float]] = {name: [] for name in runs}
    outs = {}
    with torch.inference_mode():
        for _ in range(args.warmup):
            for fn in runs.values():
                fn()
        for i in range(args.repeats):
            order = list(runs) if i % 2 == 0 else list(runs)[::-1]
            for name in order:
                t, outs[name] = timed(runs[name])
                times[name].append(t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"LR {args.lr}x{args.lr}, Ref {args.ref}x{args.ref}, threads {torch.get_num_threads()}, "
          f"repeats {args.repeats} (warm-up {args.warmup})")
    for name in runs:
        print(f"{name:>8}: median {med[name]:.3f} s  runs {[round(t, 3) for t in times[name]]}")
    print(f"ratio ours/official: {med['ours'] / med['official']:.3f}")
    print(f"max |ours - official|: {(outs['ours'] - outs['official']).abs().max().item():.3g}")


if __name__ == "__main__":
    main()
