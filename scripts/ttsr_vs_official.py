"""CPU forward time of our TTSR vs the official code, alternating runs in one process.

Usage: python scripts/ttsr_vs_official.py /path/to/researchmm/TTSR [--runs 3] [--lr 128] [--ref 512]

Both networks get the same weights (the official module's state dict, loaded into ours through
``models.checkpoint.load_into``). Ours is timed from [0,1] RGB (including its PIL pre-processing);
the official forward from ready [-1,1] inputs (its pre-processing lives in its data loader), so the
ratio is conservative for us. The official LTE asks torchvision for ImageNet VGG19 weights at
construction; offline they are unavailable, so it is built with random weights (timing does not
depend on them).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torchvision.models

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models import create_model  # noqa: E402
from models.checkpoint import load_into  # noqa: E402


def official_ttsr(repo: Path) -> torch.nn.Module:
    """The official ``TTSR(num_res_blocks='16+16+8+4', n_feats=64)`` built from a checkout."""
    vgg19 = torchvision.models.vgg19
    torchvision.models.vgg19 = lambda pretrained=False, **kw: vgg19(weights=None)
    sys.path.insert(0, str(repo))
    try:
        from model import TTSR as official  # the official package is named ``model``
        args = types.SimpleNamespace(num_res_blocks="16+16+8+4", n_feats=64, res_scale=1.0)
        return official.TTSR(args)
    finally:
        sys.path.remove(str(repo))
        torchvision.models.vgg19 = vgg19


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time is less sensitive to a shared machine."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("official_repo", type=Path, help="checkout of researchmm/TTSR")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per implementation (median)")
    ap.add_argument("--lr", type=int, default=128, help="LR side")
    ap.add_argument("--ref", type=int, default=512, help="reference side")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    torch.manual_seed(0)
    theirs = official_ttsr(a.official_repo).eval()
    saved = {k: v for k, v in theirs.state_dict().items() if "_copy" not in k}  # as their trainer saves
    ours = create_model("ttsr").eval()
    load_into(ours, saved)

    lr = torch.randint(0, 256, (1, 3, a.lr, a.lr)).float() / 255
    ref = torch.randint(0, 256, (1, 3, a.ref, a.ref)).float() / 255
    inputs = dict(zip(("lr", "lrsr", "ref", "refsr"), ours.official_inputs(lr, ref)))

    with torch.no_grad():
        run_ours = lambda: ours(lr, ref)  # noqa: E731
        run_theirs = lambda: theirs(**inputs)  # noqa: E731
        sr_ours, sr_theirs = run_ours(), (run_theirs()[0] + 1) / 2  # warm-up and output check
        diff = (sr_ours - sr_theirs).abs()
        print(f"outputs: max abs diff {diff.max().item():.3g}, pixels > 1e-4: {(diff > 1e-4).float().mean().item():.2%}")
        t_ours, t_theirs = [], []
        for i in range(a.runs):
            order = [(t_ours, run_ours), (t_theirs, run_theirs)]
            for times, fn in order if i % 2 == 0 else order[::-1]:
                times.append(timed(fn))
            print(f"run {i + 1}: ours {t_ours[-1][0]:.2f}s wall / {t_ours[-1][1]:.2f}s CPU, "
                  f"official {t_theirs[-1][0]:.2f}s wall / {t_theirs[-1][1]:.2f}s CPU", flush=True)
    print(f"LR {a.lr}x{a.lr}, Ref {a.ref}x{a.ref}, {torch.get_num_threads()} threads, median of {a.runs}:")
    for k, what in enumerate(("wall", "CPU")):
        mo, mt = statistics.median(t[k] for t in t_ours), statistics.median(t[k] for t in t_theirs)
        print(f"  {what}: ours {mo:.2f}s, official {mt:.2f}s, ours/official = {mo / mt:.3f}")


if __name__ == "__main__":
    main()
