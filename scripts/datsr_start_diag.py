"""Why DATSR's overfit check starts with its output conv zeroed (docs/overfit_check.md): a diagnostic, not a check.

  python scripts/datsr_start_diag.py residual [--size 64] [--models c2_matching,frfsr,ssmtf,datsr] [--full]
  python scripts/datsr_start_diag.py adam [--size 32] [--steps 40] [--start official|zero-output] [--reset N]

``residual``: std of (output - bilinear base) of each model at its seed-0 init on the check's 4 crops (check
architectures, or the official ones with --full), next to the output's and the base's L1 to the HR crops.

``adam``: DATSR's ``net_g`` alone (check architecture) in plain Adam on the L1 to the 4 crops, the official
parameter groups scaled to --lr, correspondences from random stand-ins computed once. Prints the L1, the
residual's std, gradient norms of a few layers, and sqrt(v_hat)/|g|: the mean of Adam's bias-corrected
second-moment root over the mean current gradient magnitude (about 1 when the gradients are steady; N means
the layer moves about N times slower than the learning rate). --start zero-output zeroes the output conv as
the check does; --reset N clears Adam's state after step N.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_overfit  # noqa: E402
from benchmark.training.adapters import ADAPTERS, _c2_correspondence  # noqa: E402
from benchmark.training.data import Item, TrainCrops, train_table  # noqa: E402
from builders.manifest import Dataset  # noqa: E402
from models import create_model, get_spec  # noqa: E402


def crops(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LR, reference and HR of the check's 4 crops at ``size`` (the training loader's own path)."""
    ds = Dataset.open(train_overfit.demo_crops(Path(tempfile.mkdtemp()) / "overfit4", size))
    table = train_table(ds)
    data = TrainCrops(ds, table, "refsr-standard", 4, size, size, {}, 0, 1)
    batch = [data[Item(i, 0, i)] for i in range(len(table))]
    return tuple(torch.stack([b[k] for b in batch]) for k in ("lr", "ref", "hr"))


def bilinear(lr: torch.Tensor) -> torch.Tensor:
    return F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)


def residual(args) -> None:
    lr, ref, hr = crops(args.size)
    base = bilinear(lr)
    for name in args.models.split(","):
        kwargs = {} if args.full else train_overfit.OVERFIT_KWARGS.get(name, get_spec(name).test_kwargs)
        torch.manual_seed(0)
        model = create_model(name, **kwargs).eval()
        with torch.no_grad():
            out = ADAPTERS[name](model, lr, ref)
        print(f"{name:<12} {json.dumps(kwargs)}  residual std {(out - base).std():.4f}  "
              f"L1 {(out - hr).abs().mean():.4f}  base L1 {(base - hr).abs().mean():.4f}", flush=True)


def adam(args) -> None:
    lr, ref, hr = crops(args.size)
    base = bilinear(lr)
    torch.manual_seed(0)
    model = create_model("datsr", **get_spec("datsr").test_kwargs)
    net = model.net_g
    if args.start == "zero-output":
        net.get_submodule(train_overfit.ZERO_OUTPUT["datsr"][1]).weight.data.zero_()
    with torch.no_grad():
        corr = _c2_correspondence(model, lr, ref)
    groups: dict[str, list] = {"rest": [], "offset": [], "small": [], "medium": []}
    for n, p in net.named_parameters():  # the official groups (datsr.yaml), scaled to --lr
        key = ("small" if "small" in n else "medium" if "medium" in n else "offset") if "offset" in n else "rest"
        groups[key].append(p)
    opt = torch.optim.Adam([{"params": groups["rest"]}, {"params": groups["offset"]},
                            {"params": groups["small"], "lr": args.lr * 1e-2},
                            {"params": groups["medium"], "lr": args.lr * 1e-1}], lr=args.lr, betas=(0.9, 0.999))
    watch = {"tail": net.dyn_agg_restore.up_tail_large, "up_body_large": net.dyn_agg_restore.up_body_large,
             "unet_head": net.dyn_agg_restore.unet_head, "up_large_dcn": net.dyn_agg_restore.up_large_dyn_agg}
    print(f"bilinear base L1 {(base - hr).abs().mean():.4f}; start {args.start}", flush=True)
    net.train()
    for step in range(1, args.steps + 1):
        out = net(lr, *corr)
        loss = (out - hr).abs().mean()
        opt.zero_grad()
        loss.backward()
        if step <= 3 or step % args.every == 0:
            norms = {k: torch.cat([p.grad.flatten() for p in m.parameters()]).norm().item() for k, m in watch.items()}
            line = (f"step {step:>3} L1 {loss.item():.4f} residual std {(out - base).std().item():.4f}  grad norm "
                    + " ".join(f"{k} {v:.2e}" for k, v in norms.items()))
            if step > 1:
                line += "  sqrt(v_hat)/|g| " + " ".join(f"{k} {ratio(opt, m):.0f}" for k, m in watch.items())
            print(line, flush=True)
        opt.step()
        if step == args.reset:
            opt.state.clear()
            print(f"Adam state cleared after step {step}", flush=True)


def ratio(opt: torch.optim.Adam, module: torch.nn.Module) -> float:
    """Mean sqrt(v_hat) of ``module``'s parameters (the state before this step) over their mean |gradient|."""
    root, grad = [], []
    for p in module.parameters():
        state = opt.state.get(p)
        if state:
            beta2 = next(g["betas"][1] for g in opt.param_groups if any(q is p for q in g["params"]))
            root.append((state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))).sqrt().flatten())
            grad.append(p.grad.abs().flatten())
    return (torch.cat(root).mean() / torch.cat(grad).mean()).item() if root else float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["residual", "adam"])
    p.add_argument("--size", type=int)
    p.add_argument("--models", default="c2_matching,frfsr,ssmtf,datsr")
    p.add_argument("--full", action="store_true", help="residual: the official architectures")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--start", choices=["official", "zero-output"], default="official")
    p.add_argument("--reset", type=int, default=0)
    args = p.parse_args(argv)
    args.size = args.size or (64 if args.what == "residual" else 32)
    residual(args) if args.what == "residual" else adam(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
