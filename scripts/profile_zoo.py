"""Profile every model in the zoo at LR 128×128 with Ref 512×512 (or --lr/--ref) and print a Markdown table.

    .venv/bin/python scripts/profile_zoo.py [--models a,b] [--runs 3] [--device cpu] [--lr 256x256 --ref 1024x1024]
                                            [--flops-only]

``--flops-only`` counts params and FLOPs on the meta device (shapes only: seconds, no memory) and
prints no runtime or memory, for sizes where a CPU forward is too slow to run for every model.

Params, FLOPs and runtime do not depend on the weights, so models are built with random weights
here (timing only: nothing in this table is a quality score). Published figures are from the
MASA-SR paper's complexity table (same input sizes).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.device import select_device  # noqa: E402
from benchmark.profile import count_on_meta, profile_model  # noqa: E402
from models import list_models  # noqa: E402

#: model -> (params in millions, GFLOPs) as published in MASA-SR (CVPR 2021), Table 5.
PUBLISHED = {"srntt": (5.75, 6500.70), "ttsr": (6.99, 1044.28), "masa": (4.03, 367.93)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(list_models()))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--lr", default="128x128", help="LR height x width (the full suite also profiles 256x256)")
    p.add_argument("--ref", default="512x512", help="reference height x width (the full suite also profiles 1024x1024)")
    p.add_argument("--flops-only", action="store_true", help="params and FLOPs on the meta device; no runtime or memory")
    args = p.parse_args()
    lr_hw, ref_hw = (tuple(int(v) for v in s.split("x")) for s in (args.lr, args.ref))
    device = select_device(args.device)
    print(f"LR {args.lr} / Ref {args.ref}; published figures are at LR 128x128 / Ref 512x512")
    print("| model | params (ours) | params (published) | GFLOPs (ours, 2/MAC) | GMACs (ours) | GFLOPs (published) "
          "| CPU runtime median (s) | peak extra memory (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        pub = PUBLISHED.get(name) if (args.lr, args.ref) == ("128x128", "512x512") else None  # their sizes only
        if args.flops_only:
            params, flops = count_on_meta(name, lr_hw, ref_hw)
            runtime = mem = "not measured (--flops-only)"
        else:
            prof = profile_model(name, device, lr_hw, ref_hw, warmup=1, runs=args.runs)
            params, flops, runtime = prof.params_total, prof.gflops * 1e9, f"{prof.runtime_median_s:.2f}"
            mem = f"{prof.peak_memory_mb:.0f}" if prof.peak_memory_mb is not None else "n/a"
        print(f"| {name} | {params:,} | {f'{pub[0]} M' if pub else '-'} | {flops / 1e9:,.2f} | "
              f"{flops / 2e9:,.2f} | {f'{pub[1]:,.2f}' if pub else '-'} | {runtime} | {mem} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
