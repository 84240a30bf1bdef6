"""Time the chunked selective scan against the per-step loop (not part of the test suite).

    python scripts/selective_scan_speed.py --threads 1     # the fixture's and LR 128x128's lengths
    python scripts/selective_scan_speed.py --lengths 192 3072 --repeat 5

Shapes are those SSMTF's SS2D passes to the scan: u/delta (B, 4*d_inner, L) with d_inner = 128
(4 scan directions x 128 channels = 512 rows), A (512, 16), B/C grouped (B, 4, 16, L). SS2D runs
inside body_small on the LR grid (L = h*w), body_medium at 2x (L = 4hw) and body_large at 4x
(L = 16hw). The script records these lengths by running a tiny SSMTF on the parity fixture's LR
size (12x16: L = 192 / 768 / 3072) and applies the same rule to LR 128x128 (L = 16,384 / 65,536 /
262,144); every one is timed by default. Inputs are drawn as the official initialisation would
make them (A = -(1..16), dt = softplus(bias + N(0, 0.5^2)) with softplus(bias) in [1e-3, 0.1];
--decay slow uses N(0, 0.05^2), so dt stays below ~0.1 and the log form gets 16-step chunks), or
with --decay fast as the parity fixture's random weights (A = -exp(N(1.9, 0.8)), dt bias
N(-4.6, 1)): decays of tens of e-folds per step, where the log form would need 1-step chunks.

The baseline is :func:`models.selective_scan.selective_scan_ref`: vectorised over batch, channels
and states (decays and inputs for every step computed at once, as mamba-ssm's reference), with a
Python loop over the L time steps only. Above --loop-max-L the loop is timed on the first
--loop-max-L steps and scaled linearly (its cost per step only grows with L, so the printed ratio
is then a lower bound).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.selective_scan import (_MAX_LOG_SPAN, scan_plan, selective_scan_chunked,  # noqa: E402
                                   selective_scan_ref)

D_INNER, K, N = 128, 4, 16
FIXTURE_LR = (12, 16)  # ../shared/fixtures/parity/ssmtf.json: HR 48x64
PROFILE_LR = (128, 128)  # the README's profile size (LR 128x128 / Ref 512x512)


def ssmtf_scan_lengths(lr_hw: tuple[int, int]) -> list[int]:
    """The L of every selective scan SSMTF runs for an LR of ``lr_hw``, recorded from a forward
    of the tiny test configuration (the lengths depend on the grid sizes only)."""
    from models import create_model, get_spec
    import models.selective_scan as ops

    seen, scan = set(), ops.selective_scan

    def record(u, *args, **kwargs):
        seen.add(u.shape[-1])
        return scan(u, *args, **kwargs)

    model = create_model("ssmtf", **get_spec("ssmtf").test_kwargs).eval()
    ops.selective_scan = record
    try:
        with torch.no_grad():
            h, w = lr_hw
            model(torch.rand(1, 3, h, w), torch.rand(1, 3, 4 * h, 4 * w))
    finally:
        ops.selective_scan = scan
    return sorted(seen)


def make_inputs(L: int, decay: str, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    d = K * D_INNER
    if decay in ("official-init", "slow"):
        A = -torch.arange(1, N + 1, dtype=torch.float32).repeat(d, 1)
        dt = torch.exp(torch.rand(d, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        bias = dt + torch.log(-torch.expm1(-dt))
    else:
        A = -torch.exp(torch.randn(d, N, generator=g) * 0.8 + 1.9)
        bias = torch.randn(d, generator=g) - 4.6
    noise = 0.05 if decay == "slow" else 0.5  # slow: dt stays near its bias (< ~0.1): log form
    return dict(u=torch.randn(1, d, L, generator=g), delta=torch.randn(1, d, L, generator=g) * noise,
                A=A, B=torch.randn(1, K, N, L, generator=g), C=torch.randn(1, K, N, L, generator=g),
                D=torch.ones(d), delta_bias=bias, delta_softplus=True)


def timed(fn, repeat: int, min_seconds: float = 1.0) -> tuple[float, float]:
    """Median (wall seconds, process CPU seconds) after one untimed warm-up call, over at least
    ``repeat`` calls and at least ``min_seconds`` of calls (short scans are repeated more: the
    machine is shared). With one thread CPU time is the steadier figure; with several, OpenMP
    spinning inflates it: use wall time."""
    fn()
    wall, cpu = [], []
    while len(wall) < repeat or (sum(wall) < min_seconds and len(wall) < 100):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="*", default=None,
                   help="L values (default: every L of SSMTF at the fixture's LR 12x16 and at LR 128x128)")
    p.add_argument("--decay", choices=["official-init", "slow", "fast"], default="official-init")
    p.add_argument("--method", choices=["auto", "doubling", "log"], default="auto",
                   help="form of the chunked scan (auto = doubling)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--loop-max-L", type=int, default=16384,
                   help="above this L the per-step loop is timed on the first L steps and scaled")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.lengths is None:
        small = ssmtf_scan_lengths(FIXTURE_LR)
        rule = lambda hw: [hw[0] * hw[1] * 4 ** i for i in range(3)]  # noqa: E731 - LR, 2x and 4x grids
        assert small == rule(FIXTURE_LR), small  # the rule, checked on the model at the fixture's size
        a.lengths = small + rule(PROFILE_LR)
        print(f"SSMTF scan lengths, recorded from the model: LR {FIXTURE_LR[0]}x{FIXTURE_LR[1]} (parity fixture) "
              f"{small}; LR {PROFILE_LR[0]}x{PROFILE_LR[1]} {a.lengths[3:]}")
    print(f"torch {torch.__version__}, {a.threads} thread(s), shapes u/delta (1, {K * D_INNER}, L), "
          f"A ({K * D_INNER}, {N}), B/C (1, {K}, {N}, L); decay {a.decay}; median of >= {a.repeat} "
          f"calls after a warm-up")
    for L in a.lengths:
        kw = make_inputs(L, a.decay)
        dt = F.softplus(kw["delta"] + kw["delta_bias"][:, None])
        method, T = scan_plan(dt, kw["A"], _MAX_LOG_SPAN[torch.float32], method=a.method)
        with torch.no_grad():
            t_chunk = timed(lambda: selective_scan_chunked(**kw, method=a.method), a.repeat)
            Lr = min(L, a.loop_max_L)
            kr = dict(kw, u=kw["u"][..., :Lr], delta=kw["delta"][..., :Lr], B=kw["B"][..., :Lr],
                      C=kw["C"][..., :Lr])
            t_loop = [t * L / Lr for t in timed(lambda: selective_scan_ref(**kr), a.repeat if Lr <= 4096 else 1)]
            out = selective_scan_chunked(**kr, method=a.method)
            err = (f"{((out - selective_scan_ref(**kr)).abs().max() / out.abs().max()).item():.1e}"
                   if Lr <= 4096 else "not computed (L > 4096)")
        scaled = f" (scaled from L={Lr})" if Lr < L else ""
        print(f"L={L:>7}: chunked ({method}, T={T}) wall {t_chunk[0]:7.3f} s, CPU {t_chunk[1]:7.3f} s | "
              f"per-step loop{scaled} wall {t_loop[0]:7.3f} s, CPU {t_loop[1]:7.3f} s | ratio wall "
              f"{t_loop[0] / t_chunk[0]:4.1f}x, CPU {t_loop[1] / t_chunk[1]:4.1f}x | max rel diff {err}")


if __name__ == "__main__":
    main()
