"""Profile the two models too slow for profile_zoo.py on a CPU (SSMTF, DEF), at LR 128x128 / Ref 512x512 or --lr/--ref.

    python scripts/profile_heavy.py --model ssmtf --part flops   # seconds: meta-device count
    python scripts/profile_heavy.py --model def --part flops
    python scripts/profile_heavy.py --model def --part flops --lr 256x256 --ref 1024x1024
    python scripts/profile_heavy.py --model ssmtf --part time    # one full forward (tens of minutes)
    python scripts/profile_heavy.py --model def --part time      # one UNet evaluation + the texture network

Random weights (timing and counting only). FLOPs are FlopCounterMode counts (2 per multiply-add,
with the project's deform_conv2d formula) run on the meta device, so nothing is computed:
- SSMTF: the 54 selective scans are stubbed out (FlopCounterMode counts only the matmul inside the
  chunked scan, not its element-wise recurrence); their size is printed as state updates
  (sum of D*N*L), to be costed per update.
- DEF: one evaluation of the 256x256 guided-diffusion UNet and the texture network. A forward at
  LR 128x128 runs 9 half-overlapping 256x256 HR windows x ``steps`` UNet evaluations (1000 in the
  paper) + the texture network, so its cost is 9 * steps * (UNet) + (texture network).
Times: wall and process CPU seconds of one call (with one thread, CPU seconds are the steadier
figure on a shared machine).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark.profile import _register_formulas, count_params  # noqa: E402
from models import create_model  # noqa: E402
from models.def_model import windows  # noqa: E402
import models.selective_scan as scan_ops  # noqa: E402

LR, REF = (1, 3, 128, 128), (1, 3, 512, 512)  # set from --lr / --ref


def timed(fn) -> str:
    t, c = time.perf_counter(), time.process_time()
    with torch.no_grad():
        fn()
    return f"wall {time.perf_counter() - t:.1f} s, CPU {time.process_time() - c:.1f} s"


def ssmtf_flops() -> None:
    sizes = []

    def stub(u, delta, A, *args, **kwargs):
        sizes.append(u.shape[1] * A.shape[1] * u.shape[-1])
        return torch.empty_like(u)

    scan_ops.selective_scan = stub
    with torch.device("meta"):
        model = create_model("ssmtf").eval()
        with torch.no_grad(), FlopCounterMode(display=False) as c:
            model(torch.rand(LR), torch.rand(REF))
    print(f"ssmtf: params {count_params(model)[0]:,}; GFLOPs without the selective scans "
          f"{c.get_total_flops() / 1e9:,.2f}; {len(sizes)} scans, {sum(sizes) / 1e9:.2f} G state updates")


def def_flops() -> None:
    with torch.device("meta"):
        model = create_model("def", steps=1).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as c:
            model.denoiser(torch.randn(1, 3, 256, 256), torch.tensor([500.0]))
        unet = c.get_total_flops()
        with torch.no_grad(), FlopCounterMode(display=False) as c:
            model.transfer(torch.rand(LR), torch.rand(*LR[:2], 4 * LR[2], 4 * LR[3]), torch.rand(REF))
    n_win = len(windows(LR[2], LR[3], model.enhancer.patch // model.enhancer.scale))
    print(f"def: params {count_params(model)[0]:,} (denoiser {sum(p.numel() for p in model.denoiser.parameters()):,}); "
          f"GFLOPs per UNet evaluation (256x256) {unet / 1e9:,.2f}; texture network {c.get_total_flops() / 1e9:,.2f}; "
          f"{n_win} windows at LR {LR[2]}x{LR[3]} (a forward: {n_win} x steps UNet evaluations + the texture network)")


def ssmtf_time() -> None:
    model = create_model("ssmtf").eval()
    lr, ref = torch.rand(LR), torch.rand(REF)
    print(f"ssmtf: one forward {timed(lambda: model(lr, ref))}; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB; scan {model.scan_backends}")


def def_time() -> None:
    model = create_model("def", steps=1).eval()
    x, t = torch.randn(1, 3, 256, 256), torch.tensor([500.0])
    print(f"def: one UNet evaluation (256x256) {timed(lambda: model.denoiser(x, t))}", flush=True)
    lr, ref = torch.rand(LR), torch.rand(REF)
    de = F.interpolate(lr, scale_factor=4, mode="bicubic")
    print(f"def: texture network {timed(lambda: model.transfer(lr, de, ref))}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["ssmtf", "def"], required=True)
    p.add_argument("--part", choices=["flops", "time"], required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", default="128x128", help="LR height x width")
    p.add_argument("--ref", default="512x512", help="reference height x width")
    a = p.parse_args()
    global LR, REF
    LR, REF = ((1, 3, *(int(v) for v in s.split("x"))) for s in (a.lr, a.ref))
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    _register_formulas()
    {("ssmtf", "flops"): ssmtf_flops, ("def", "flops"): def_flops,
     ("ssmtf", "time"): ssmtf_time, ("def", "time"): def_time}[a.model, a.part]()


if __name__ == "__main__":
    main()
