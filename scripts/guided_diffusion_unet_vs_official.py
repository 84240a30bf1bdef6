"""Our guided-diffusion UNet vs the official ``UNetModel``: same weights, same input, max |diff| and CPU time.

Usage: python scripts/guided_diffusion_unet_vs_official.py /path/to/openai/guided-diffusion
       [--num-channels 64] [--size 256] [--runs 1]

The official model is built by the official ``script_util.create_model`` with the README flags of
``256x256_diffusion_uncond.pt`` (``--num-channels 256`` is the real model, 552.8M parameters; the
default 64 keeps the whole architecture at a sixteenth of the parameters). Every official weight is
drawn from N(0, 0.02) (its init zeroes the output convolutions), the state dict is loaded into ours
through ``models.checkpoint.load_into`` (strict), and both run on one random x_t and timestep.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.checkpoint import load_into  # noqa: E402
from models.guided_diffusion_unet import GUIDED_256_UNCOND, GuidedDiffusionUNet  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo", type=Path)
    ap.add_argument("--num-channels", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(args.repo))
    from guided_diffusion.script_util import create_model  # the official package

    torch.manual_seed(0)
    official = create_model(image_size=256, num_channels=args.num_channels, num_res_blocks=2, learn_sigma=True,
                            class_cond=False, attention_resolutions="32,16,8", num_head_channels=64,
                            resblock_updown=True, use_scale_shift_norm=True, use_fp16=False).eval()
    with torch.no_grad():
        for p in official.parameters():
            p.normal_(0, 0.02)
    ours = GuidedDiffusionUNet(**dict(GUIDED_256_UNCOND, model_channels=args.num_channels)).eval()
    load_into(ours, official.state_dict())
    x, t = torch.randn(1, 3, args.size, args.size), torch.tensor([500])
    times = {"official": [], "ours": []}
    with torch.no_grad():
        for _ in range(args.runs):
            for name, net in (("official", official), ("ours", ours)):
                t0 = time.perf_counter()
                out = net(x, t)
                times[name].append(time.perf_counter() - t0)
                if name == "official":
                    ref = out
    print(f"parameters {sum(p.numel() for p in ours.parameters()):,}  max |ours - official| "
          f"{(out - ref).abs().max().item():.3g}  (max |official| {ref.abs().max().item():.3g})")
    print("  ".join(f"{k} {min(v):.2f} s" for k, v in times.items()))


if __name__ == "__main__":
    main()
