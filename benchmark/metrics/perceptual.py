"""LPIPS (Zhang et al. 2018), AlexNet variant v0.1, with its real weights and no network access.

Our own network: ImageNet AlexNet ``features`` from :func:`models.pretrained.features` (offline),
tapped after each of its five ReLUs; each tap is unit-normalised along channels, the squared
difference is weighted per channel by the v0.1 linear layers, averaged over space and summed
over layers. Inputs are scaled to [-1, 1] and normalised with LPIPS's fixed shift and scale.
The linear layers are read (``weights_only=True``) from ``weights/v0.1/alex.pth`` inside the
installed ``lpips`` package, which is never imported (its constructor would download AlexNet).
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from models.checkpoint import CheckpointError

from ._base import Metric, register_metric

#: indices in torchvision's AlexNet ``features`` of the ReLUs LPIPS taps, and their widths.
ALEX_TAPS = (1, 4, 7, 9, 11)
ALEX_CHANNELS = (64, 192, 384, 256, 256)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def lpips_linear_weights_path(net: str = "alex", version: str = "0.1") -> Path:
    """Where the installed ``lpips`` package keeps its linear-layer weights (without importing it)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or spec.origin is None:
        raise CheckpointError("the `lpips` package is not installed (pip install lpips==0.1.4); "
                              "its weights/v0.1/alex.pth holds the LPIPS linear layers")
    path = Path(spec.origin).parent / "weights" / f"v{version}" / f"{net}.pth"
    if not path.is_file():
        raise CheckpointError(f"LPIPS linear weights not found at {path}")
    return path


class LPIPSAlexNet(nn.Module):
    """The LPIPS-alex distance network; ``forward(x0, x1)`` takes RGB in [-1, 1], returns ``(B,)``."""

    def __init__(self):
        super().__init__()
        from models.pretrained import features

        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.features = features("alexnet")[: ALEX_TAPS[-1] + 1]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in ALEX_CHANNELS)
        sd = torch.load(lpips_linear_weights_path(), map_location="cpu", weights_only=True)
        for i, lin in enumerate(self.lins):
            lin.weight.data.copy_(sd[f"lin{i}.model.1.weight"])
        self.eval().requires_grad_(False)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        x = (x - self.shift) / self.scale
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in ALEX_TAPS:
                out.append(x)
        return out

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for f0, f1, lin in zip(self.taps(x0), self.taps(x1), self.lins):
            f0 = f0 / (f0.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            f1 = f1 / (f1.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((f0 - f1) ** 2).mean(dim=(1, 2, 3))
        return total


@lru_cache(maxsize=4)
def _network(device: str) -> LPIPSAlexNet:
    return LPIPSAlexNet().to(device)


class LPIPS(Metric):
    """LPIPS-alex v0.1 distance (lower is better) on RGB 0-255 inputs."""

    higher_is_better = False
    space = "rgb"

    def __init__(self, name: str = "lpips", device=None):
        super().__init__(name, device)
        self._reason: str | None = None

    def available(self) -> tuple[bool, str]:
        if self._reason is None:
            try:
                _network(str(self.device))
                self._reason = ""
            except CheckpointError as err:
                self._reason = f"unavailable ({err})"
        return self._reason == "", self._reason

    def compute(self, sr, hr):
        net = _network(str(self.device))
        return net(sr.float() / 127.5 - 1.0, hr.float() / 127.5 - 1.0)


register_metric("lpips", LPIPS, label="LPIPS", higher_is_better=False, decimals=4,
                summary="LPIPS AlexNet v0.1", order=40)
