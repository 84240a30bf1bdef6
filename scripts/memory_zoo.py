"""Peak CPU memory of every model's forward at given input sizes, each in its own (forked) process.

    .venv/bin/python scripts/memory_zoo.py [--models a,b] [--sizes 125x93/500x500,125x125/1000x1000]
                                           [--timeout 900] [--kwargs def='{"steps": 2}'] [--fit]

Prints a Markdown table: the peak resident memory of a process running the model (this process's
resident memory with the zoo imported, plus what building the model and inputs added in the child,
plus the forward's peak: VmHWM after a reset), the forward's own extra peak over what was resident
before it, and the forward's time. Sizes are padded up to the model's multiples, as the harness pads. A forward that exceeds ``--timeout`` is killed and its row gives
the peak reached so far (a lower bound, marked ``>=``). ``--fit`` measures four small sizes per
model besides ``--sizes`` and prints the :class:`models.base.MemoryCost` fitted to them all (the numbers each model
file declares). ``--fit-table FILE`` fits again from a table printed earlier. Weights do not change memory, so
models are built with random weights.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CUFED5 = "125x93/500x500"  # HR 500x372 -> LR 125x93, reference 500x500
WRSR = "125x125/1000x1000"  # HR 500x500 -> LR 125x125, reference 1000x1000
FIT_SIZES = "32x32/128x128,64x64/128x128,32x32/256x256,64x64/256x256"


def _kib(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child(name: str, lr_hw: tuple[int, int], ref_hw: tuple[int, int], kwargs: dict, report) -> None:
    """Build the model and inputs, reset the high-water mark, run one forward, report."""
    import torch

    from models import create_model

    at_fork = _kib("self", "VmRSS")
    model = create_model(name, **kwargs).eval()
    up = lambda hw, m: tuple(-(-v // m) * m for v in hw)  # noqa: E731 - padded as the harness pads
    lr, ref = torch.rand(1, 3, *up(lr_hw, model.spec.lr_multiple)), torch.rand(1, 3, *up(ref_hw, model.spec.ref_multiple))
    with open("/proc/self/clear_refs", "w") as f:  # Linux: VmHWM restarts from the current RSS
        f.write("5")
    before = _kib("self", "VmRSS")
    report(json.dumps({"ready": before, "model": before - at_fork}))
    t0 = time.perf_counter()
    with torch.no_grad():
        model(lr, ref)
    report(json.dumps({"before": before, "hwm": _kib("self", "VmHWM"), "seconds": time.perf_counter() - t0}))


def measure(name: str, size: str, kwargs: dict, timeout: float) -> dict:
    """One forward in a forked process (the zoo is imported once, by the parent); the peak is polled
    from outside, so a forward killed at the timeout still gives the peak it had reached."""
    lr, ref = (tuple(int(v) for v in part.split("x")) for part in size.split("/"))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one forward, then leave without running the parent's clean-up
        os.close(read_end)
        code = 0
        try:
            with os.fdopen(write_end, "w") as pipe:
                child(name, lr, ref, kwargs, lambda line: (pipe.write(line + "\n"), pipe.flush()))
        except BaseException:  # noqa: BLE001 - reported as the exit code
            code = 1
        os._exit(code)
    os.close(write_end)
    pipe = os.fdopen(read_end)
    first = json.loads(pipe.readline() or '{"ready": 0, "model": 0}')
    ready, base = first["ready"], _kib("self", "VmRSS") + first["model"]  # a standalone process before the forward
    t0, peak, status = time.monotonic(), 0, None
    while time.monotonic() - t0 < timeout:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        peak = max(peak, _kib(pid, "VmHWM"))
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return {"model": name, "size": size, "peak_mib": (base + peak - ready) / 1024,
                "extra_mib": (peak - ready) / 1024, "seconds": time.monotonic() - t0, "complete": False}
    out = pipe.read().strip().splitlines()
    if status or not out:
        return {"model": name, "size": size, "error": f"exit status {status}"}
    r = json.loads(out[-1])
    return {"model": name, "size": size, "peak_mib": (base + r["hwm"] - ready) / 1024,
            "extra_mib": (r["hwm"] - ready) / 1024,
            "seconds": r["seconds"], "complete": True}


def fit(rows: list[dict]) -> tuple[float, ...]:
    """Non-negative least squares of the forward's extra bytes = base + a*LR px + b*Ref px + c*LR px*Ref px
    over the measured sizes, each weighted by 1/its value (relative error), so small sizes count too;
    then scaled up so that none of the larger half of the measured forwards is above its estimate (the
    guard must not under-estimate the sizes it is for; small forwards are dominated by fixed costs)."""
    import numpy as np
    from scipy.optimize import nnls

    design, target = [], []
    for r in rows:
        (lh, lw), (rh, rw) = (tuple(int(v) for v in p.split("x")) for p in r["size"].split("/"))
        y = r["extra_mib"] * 2 ** 20
        design.append(np.array([1.0, lh * lw, rh * rw, lh * lw * rh * rw]) / y)
        target.append(1.0)
    coef = nnls(np.array(design), np.array(target))[0]
    ratios = sorted(zip([r["extra_mib"] for r in rows], np.array(design) @ coef))[len(rows) // 2:]
    return tuple(float(c) * max(1.0, 1.0 / min(float(q) for _, q in ratios)) for c in coef)


def resident(rows: list[dict]) -> float:
    """MiB a process running the model holds before a forward (the largest measured)."""
    return max(r["peak_mib"] - r["extra_mib"] for r in rows)


def parse_table(text: str) -> dict[str, list[dict]]:
    """Complete rows of a table this script printed, by model (to fit again without measuring)."""
    out: dict[str, list[dict]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and "/" in cells[1] and cells[3][:1].isdigit():
            peak, extra = (float(cells[k].replace(",", "")) for k in (2, 3))
            out.setdefault(cells[0], []).append({"size": cells[1], "extra_mib": extra, "peak_mib": peak})
    return out


def max_ref_side(coef: tuple[float, ...], resident_mib: float, budget_gib: float = 8.0, lr: int = 125,
                 cap: int = 2560) -> int:
    """The longest square reference side (a multiple of 64; at most ``cap``, five stacked 512-pixel
    references as in the multi-reference test) whose forward on an ``lr`` x ``lr`` LR keeps the
    process (``resident_mib`` before the forward) within ``budget_gib``."""
    base, per_lr, per_ref, per_pair = coef
    side = cap
    while side > 64 and (resident_mib * 2 ** 20 + base + per_lr * lr * lr + (per_ref + per_pair * lr * lr) * side * side
                         > budget_gib * 2 ** 30):
        side -= 64
    return side


def cost_text(coef: tuple[float, ...], resident_mib: float) -> str:
    base, per_lr, per_ref, per_pair = coef
    return (f"MemoryCost(base_mib={base / 2 ** 20:.0f}, per_lr_px={per_lr:.0f}, per_ref_px={per_ref:.0f}, "
            f"per_lr_ref_px={per_pair:.3g}); max_ref_side {max_ref_side(coef, resident_mib)} "
            f"(8 GiB at LR 125x125, a WR-SR input; at most 2560)")


def main() -> int:
    import torch

    from models import list_models

    torch.set_num_threads(1)

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(list_models()))
    p.add_argument("--sizes", default=f"{CUFED5},{WRSR}", help="LRHxLRW/REFHxREFW,...")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per forward before it is killed")
    p.add_argument("--kwargs", action="append", default=[], metavar="MODEL=JSON",
                   help="constructor arguments for one model, e.g. def='{\"steps\": 2}'")
    p.add_argument("--fit-table", metavar="FILE", help="print the MemoryCost fitted to a table this script printed")
    p.add_argument("--fit", action="store_true",
                   help=f"also measure {FIT_SIZES} and print the MemoryCost fitted to every measured size")
    args = p.parse_args()
    if args.fit_table:
        for name, rows in parse_table(Path(args.fit_table).read_text()).items():
            print(f"{name}: {cost_text(fit(rows), resident(rows))}")
        return 0
    kwargs = {k: json.loads(v) for k, _, v in (item.partition("=") for item in args.kwargs)}
    sizes = ((FIT_SIZES + "," if args.fit else "") + args.sizes).split(",")
    print("| model | LR / Ref | peak RSS (MiB) | forward extra (MiB) | forward (s) |")
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        rows = []
        for size in sizes:
            r = measure(name, size, kwargs.get(name, {}), args.timeout)
            if "error" in r:
                print(f"| {name} | {size} | {r['error']} | | |", flush=True)
                continue
            ge = "" if r["complete"] else ">= "
            print(f"| {name} | {size} | {ge}{r['peak_mib']:,.0f} | {ge}{r['extra_mib']:,.0f} | "
                  f"{ge}{r['seconds']:.1f}{'' if r['complete'] else ' (killed)'} |", flush=True)
            if r["complete"]:  # a killed forward's peak is only a lower bound: not fitted
                rows.append(r)
        if args.fit and len(rows) >= 4:
            print(f"  {name}: {cost_text(fit(rows), resident(rows))}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
