"""Short replay of C2-Matching's stage-1 training on the overfit check's 4 photos, watching the matches.

  python scripts/c2_contrastive_replay.py [--start torchvision|zoo] [--warp homography|identity] [--lr 1e-4]
                                          [--steps 20] [--every 1]

A diagnostic of the contrastive loss's gradient path, not a recipe run: the full-size extractor
(``ContrasExtractorSep``) trained by plain Adam on the recipe's contrastive loss, each step the 4 demo crops
(128x128) under fresh homographies (``homography_pair``: window 128, corners moved by [0, 10) px) or the
identity warp. Printed per step: the share of ground-truth matches whose nearest descriptor (cosine, whole
grid) lies within one cell on 4 fixed held-out pairs, the training batch's loss, and the mean over images
of the norm of the mean unit descriptor (1 = every descriptor one direction, the collapse). ``--start
torchvision``: one VGG16 in torchvision's initialisation (seed 0) in both branches, as the official start
copies ImageNet VGG16 into both; ``zoo``: the zoo module's own random init (each branch independent).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmark.training.data import homography_pair  # noqa: E402
from benchmark.training.losses import Contrastive, ground_truth_matches  # noqa: E402
from builders.demo_corpus import skimage_data_dir  # noqa: E402
from builders.images import read_rgb  # noqa: E402
from models.c2_matching_parts import ContrasExtractorSep, torchvision_vgg_to_extractor  # noqa: E402

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")
SIZE, STRIDE, BORDER = 128, 4, 10.0


def crops() -> list[np.ndarray]:
    out = []
    for name in PHOTOS:  # the overfit check's crops: a third into each photo
        img = read_rgb(skimage_data_dir() / name)[0]
        y, x = img.shape[0] // 3, img.shape[1] // 3
        out.append(np.ascontiguousarray(img[y:y + SIZE, x:x + SIZE]).astype(np.float32))
    return out


def batch(imgs, warp: str, rng: np.random.Generator):
    """(query, ref, flow) tensors: each crop and its warped copy, flow = where each query pixel lands."""
    q, r, f = [], [], []
    for img in imgs:
        if warp == "identity":
            xs, ys = np.meshgrid(np.arange(SIZE), np.arange(SIZE))
            ref, flow = img, np.stack([xs, ys], -1).astype(np.float64)
        else:
            ref, flow = homography_pair(img, (0, 10), SIZE, rng)
        q.append(torch.from_numpy(img).permute(2, 0, 1) / 255)
        r.append(torch.from_numpy(np.array(ref)).permute(2, 0, 1) / 255)
        f.append(torch.from_numpy(flow))
    return torch.stack(q), torch.stack(r), torch.stack(f)


def accuracy(f1: torch.Tensor, f2: torch.Tensor, flow: torch.Tensor) -> float:
    hits = total = 0
    for b in range(f1.shape[0]):
        c, h, w = f1[b].shape
        ids, _, pos2 = ground_truth_matches(flow[b], h, w, STRIDE, BORDER)
        d1 = F.normalize(f1[b].reshape(c, -1), dim=0)[:, ids]
        best = (d1.t() @ F.normalize(f2[b].reshape(c, -1), dim=0)).argmax(1)
        hits += int(((best // w - pos2[0]).abs().maximum((best % w - pos2[1]).abs()) <= 1).sum())
        total += len(ids)
    return hits / total


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--start", choices=("torchvision", "zoo"), default="torchvision")
    p.add_argument("--warp", choices=("homography", "identity"), default="homography")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--every", type=int, default=1, help="print every N steps")
    args = p.parse_args(argv)
    import torchvision

    torch.manual_seed(0)
    net = ContrasExtractorSep()
    if args.start == "torchvision":
        net.load_state_dict(torchvision_vgg_to_extractor(torchvision.models.vgg16(weights=None).state_dict()))
    imgs = crops()
    held_out = batch(imgs, args.warp, np.random.default_rng(99))
    rng = np.random.default_rng(0)
    loss_fn = Contrastive(margin=1.0, safe_radius=4, scaling_steps=2, border=BORDER, min_matches=128)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    for step in range(args.steps + 1):
        with torch.no_grad():
            out = net(held_out[0], held_out[1])
            acc = accuracy(out["dense_features1"], out["dense_features2"], held_out[2])
        q, r, flow = batch(imgs, args.warp, rng)
        out = net(q, r)
        loss = loss_fn(out, None, {"flow": flow})
        spread = F.normalize(out["dense_features1"].detach(), dim=1).mean((2, 3)).norm(dim=1).mean()
        if step % args.every == 0 or step == args.steps:
            print(f"step {step:4d}  matches within 1 cell {100 * acc:5.1f} %  loss {loss.item():.4f}  "
                  f"mean-direction norm {spread:.3f}", flush=True)
        if step < args.steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return 0


if __name__ == "__main__":
    sys.exit(main())
