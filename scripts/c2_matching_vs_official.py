"""CPU forward time of our C2-Matching against the official code, LR 128x128 with Ref 512x512.

Usage: python scripts/c2_matching_vs_official.py /path/to/C2-Matching [--runs 3] [--threads 2]

The official networks are imported from a checkout of yumingj/C2-Matching (@6d60149e). Its DCNv2
is a compiled CUDA/C++ extension, so its backend (``_ext.dcn_v2_forward``) is replaced by
``torchvision.ops.deform_conv2d`` (the same substitution as the parity fixture), and
torchvision's VGG constructors are given random weights instead of downloading ImageNet ones.
Both sides get the same random weights (the state dicts are interchangeable), the runs alternate
in one process, and the median per side is reported with the ratio ours/official (< 1 = faster).
The official side is timed as its ``RefRestorationModel.test``: extractor, map, restoration on
the prepared inputs; ours includes its own input preparation (PIL-exact bicubic upsampling).
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torchvision.models.vgg as tv_vgg
from torchvision.ops import deform_conv2d

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from models import create_model  # noqa: E402
from core.resize import pil_bicubic_tensor  # noqa: E402


def _dcn_v2_forward(inp, weight, bias, offset, mask, kh, kw, sh, sw, ph, pw, dh, dw, groups):
    return deform_conv2d(inp, offset, weight, bias, stride=(sh, sw), padding=(ph, pw),
                         dilation=(dh, dw), mask=mask)


def import_official(repo: Path) -> dict[str, types.ModuleType]:
    """Import the official arch modules without running ``mmsr``'s package ``__init__`` files."""
    archs = repo / "mmsr" / "models" / "archs"
    for name, path in (("mmsr", repo / "mmsr"), ("mmsr.models", repo / "mmsr" / "models"),
                       ("mmsr.models.archs", archs), ("mmsr.models.archs.DCNv2", archs / "DCNv2")):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(path)]
        sys.modules[name] = pkg
    ext = types.ModuleType("_ext")
    ext.dcn_v2_forward = _dcn_v2_forward
    sys.modules["_ext"] = ext
    for arch in ("vgg16", "vgg19"):  # random weights, never a download
        ctor = getattr(tv_vgg, arch)
        setattr(tv_vgg, arch, lambda pretrained=False, _c=ctor, **kw: _c(weights=None, **kw))
    return {n: importlib.import_module(f"mmsr.models.archs.{n}")
            for n in ("ref_restoration_arch", "corres_generation_arch", "contras_extractor_arch")}


def build_official(mods: dict[str, types.ModuleType]):
    net_g = mods["ref_restoration_arch"].RestorationNet(64, 16, 8)
    net_map = mods["corres_generation_arch"].CorrespondenceGenerationArch(
        3, 1, ["relu1_1", "relu2_1", "relu3_1"], "vgg19")
    net_extractor = mods["contras_extractor_arch"].ContrasExtractorSep()
    return net_g.eval(), net_map.eval(), net_extractor.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("official_repo", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=int, default=128)
    ap.add_argument("--ref", type=int, default=512)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    ours = create_model("c2_matching").eval()
    net_g, net_map, net_extractor = build_official(import_official(args.official_repo))
    net_g.load_state_dict(ours.net_g.state_dict())
    net_map.load_state_dict(ours.net_map.state_dict())
    net_extractor.load_state_dict(ours.net_extractor.state_dict())

    lr = torch.rand(1, 3, args.lr, args.lr)
    ref = torch.rand(1, 3, args.ref, args.ref)
    hr = (4 * args.lr, 4 * args.lr)

    def run_official():
        img_in_up = pil_bicubic_tensor(lr, hr)  # the official dataset makes this with PIL, untimed
        t0 = time.perf_counter()
        features = net_extractor(img_in_up, ref)
        pre_offset, ref_feat = net_map(features, ref)
        out = net_g(lr, pre_offset, ref_feat)
        return time.perf_counter() - t0, out

    def run_ours():
        t0 = time.perf_counter()
        out = ours(lr, ref)
        return time.perf_counter() - t0, out

    times = {"official": [], "ours": []}
    outputs = {}
    with torch.inference_mode():
        for i in range(args.runs):
            order = (("official", run_official), ("ours", run_ours))
            for name, fn in (order if i % 2 == 0 else order[::-1]):
                t, out = fn()
                times[name].append(t)
                outputs[name] = out
                print(f"run {i} {name}: {t:.2f} s", flush=True)
    diff = (outputs["ours"] - outputs["official"].clamp(0, 1)).abs().max().item()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"LR {args.lr}x{args.lr}, Ref {args.ref}x{args.ref}, {args.threads} threads, {args.runs} runs")
    print(f"median official {med['official']:.2f} s, ours {med['ours']:.2f} s, "
          f"ratio ours/official {med['ours'] / med['official']:.3f}")
    print(f"max |ours - official| on the last outputs: {diff:.2e}")


if __name__ == "__main__":
    main()
