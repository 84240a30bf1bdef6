"""Why SSMTF's overfit check stalls at the bilinear base: per-step traces of net_g alone (a diagnostic, not a check).

    OMP_NUM_THREADS=1 python scripts/ssmtf_residual_diag.py [--steps 30] [--lr 1e-3] [--zero-output] [--warmup N]
        [--no-final-ln] [--no-dropout] [--kwargs '{"ngf": 64, ...}']

The check's 4 crops (64x64 HR of scikit-image's astronaut, chelsea, coffee, rocket at a third of each side,
reference 8 px further, LR by PIL bicubic), ``spec.test_kwargs`` (or ``--kwargs``), seed 0, correspondences from the model's own
random extractor/VGG19 computed once (the check's stand-ins), Adam with the recipe's parameter groups scaled to
``--lr`` (offset 1x, offset+medium 0.1x, offset+small 0.01x), L1 to the HR crops. Printed per step: the L1, the
std of the residual net_g adds to its bilinear base, the share of negative inputs to each tail's LeakyReLU, the
std of tail_large's LeakyReLU input and its mean absolute change since the previous step, the gradient norms
of tail_large, body_small and the content extractor, and for each Mamba body's final LayerNorm the per-token
std of its input and the spatial std of its output. ``--no-final-ln`` / ``--no-dropout`` (not the official
network) remove the bodies' final LayerNorm or the Dropout(0.1), to test those causes;
``--zero-output`` starts as scripts/train_overfit.py does (tail_large's last conv zeroed), ``--warmup N`` ramps
the learning rate linearly over N steps.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark.training.adapters import _c2_correspondence  # noqa: E402
from builders.demo_corpus import skimage_data_dir  # noqa: E402
from builders.images import read_rgb  # noqa: E402
from core.resize import pil_bicubic_tensor  # noqa: E402
from models import create_model, get_spec  # noqa: E402

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")  # scripts/train_overfit.py's crops
SCALES = ("small", "medium", "large")


def crops(size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    hrs, refs = [], []
    for name in PHOTOS:
        img = torch.from_numpy(read_rgb(skimage_data_dir() / name)[0]).permute(2, 0, 1).float() / 255
        y, x = img.shape[1] // 3, img.shape[2] // 3
        hrs.append(img[:, y:y + size, x:x + size])
        refs.append(img[:, y + 8:y + 8 + size, x + 8:x + 8 + size])
    hr, ref = torch.stack(hrs), torch.stack(refs)
    return pil_bicubic_tensor(hr, (size // 4, size // 4)), ref, hr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--no-final-ln", action="store_true")
    p.add_argument("--no-dropout", action="store_true")
    p.add_argument("--warmup", type=int, default=0, help="linear learning-rate warm-up over this many steps")
    p.add_argument("--zero-output", action="store_true", help="the check's start: tail_large's last conv zeroed")
    p.add_argument("--kwargs", help="JSON architecture options instead of spec.test_kwargs")
    a = p.parse_args()
    lr, ref, hr = crops()
    torch.manual_seed(0)
    model = create_model("ssmtf", **(json.loads(a.kwargs) if a.kwargs else get_spec("ssmtf").test_kwargs)).train()
    corr = _c2_correspondence(model, lr, ref)
    net = model.net_g
    agg = net.dyn_agg_restore
    base = F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)
    print(f"bilinear base L1 {(base - hr).abs().mean().item():.5f}")
    if a.zero_output:
        with torch.no_grad():
            agg.tail_large[2].weight.zero_()
            agg.tail_large[2].bias.zero_()
    if a.no_final_ln:
        for s in SCALES:
            getattr(agg, f"body_{s}").norm.forward = lambda x: x
    if a.no_dropout:
        for m in net.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    stats: dict[str, tuple[float, float]] = {}
    for s in SCALES:
        getattr(agg, f"body_{s}").norm.register_forward_hook(
            lambda m, i, o, s=s: stats.__setitem__(s, (i[0].std(-1).mean().item(), o.std(1).mean().item())))
        for m in getattr(agg, f"tail_{s}"):
            if isinstance(m, torch.nn.LeakyReLU):
                m.register_forward_pre_hook(lambda m, i, s=s: stats.update(
                    {f"neg_{s}": (i[0] < 0).float().mean().item(), f"pre_{s}": i[0].detach().clone()}))
    groups: dict[float, list] = {}
    for name, prm in net.named_parameters():
        scale = (0.01 if "small" in name else 0.1 if "medium" in name else 1.0) if "offset" in name else 1.0
        groups.setdefault(scale, []).append(prm)
    opt = torch.optim.Adam([{"params": v, "lr": a.lr * k} for k, v in groups.items()], betas=(0.9, 0.999))

    def grad_norm(mod) -> float:
        return float(sum(prm.grad.norm() ** 2 for prm in mod.parameters() if prm.grad is not None) ** 0.5)

    prev = None
    for step in range(1, a.steps + 1):
        opt.zero_grad()
        out = net(lr, *corr)
        loss = (out - hr).abs().mean()
        loss.backward()
        print(f"step {step:3d} L1 {loss.item():.5f} residual std {(out - base).std().item():.5f} | LeakyReLU inputs < 0: "
              + " ".join(f"tail_{s} {stats[f'neg_{s}']:.2f}" for s in SCALES)
              + f" | tail_large pre-activation std {stats['pre_large'].std().item():.3f}, mean |change| since the last "
              f"step {(stats['pre_large'] - prev).abs().mean().item() if prev is not None else 0:.3f}"
              + f" | grad norm tail_large {grad_norm(agg.tail_large):.1e} body_small {grad_norm(agg.body_small):.1e} "
              f"content_extractor {grad_norm(net.content_extractor):.1e} | final LN input token std / output spatial "
              "std " + " ".join(f"{s} {stats[s][0]:.2f}/{stats[s][1]:.3f}" for s in SCALES), flush=True)
        prev = stats["pre_large"]
        for g in opt.param_groups:
            g.setdefault("peak", g["lr"])
            g["lr"] = g["peak"] * min(1.0, step / a.warmup) if a.warmup else g["peak"]
        opt.step()


if __name__ == "__main__":
    main()
