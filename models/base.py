"""The one model interface: ``forward(lr, ref) -> sr`` on RGB tensors in [0, 1].

Every model in the zoo subclasses :class:`RefSRModel` and declares a :class:`ModelSpec`.
Model-specific pre-processing (BGR order, [-1, 1] range, upsampled inputs) stays inside the
model; size and padding policy is applied once by the harness from the spec.

Official weights come as *tags* (timm's ``model.tag``): ``ttsr`` is the default set of files,
``ttsr.rec`` another. Each file has a *role*, the sub-network it loads into
(:meth:`RefSRModel.checkpoint_modules`); :meth:`RefSRModel.checkpoint_filter` turns an official
file's keys into the module's (timm's ``checkpoint_filter_fn``). Loading itself is generic
(:func:`models.weights.load_weights`).
"""
from __future__ import annotations

import os

import torch
from torch import nn

from .spec import CheckpointFile, MemoryCost, ModelSpec, WeightTag  # noqa: F401 - the names model files import from here


class RefSRModel(nn.Module):
    """Base class: subclasses implement :meth:`forward`; ``spec`` is attached at construction."""

    spec: ModelSpec

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Super-resolve ``lr`` (B,3,h,w) with ``ref`` (B,3,H,W); return (B,3,s*h,s*w) in [0,1]."""
        raise NotImplementedError

    def checkpoint_modules(self) -> dict[str, nn.Module]:
        """Role -> the sub-module an official file of that role loads into."""
        return {"net": self}

    def read_checkpoint(self, role: str, path: str | os.PathLike) -> dict[str, torch.Tensor]:
        """A file as a flat tensor dict (``weights_only=True``; wrappers and ``module.`` removed).
        Models whose official files are not torch files (SRNTT's TensorFlow arrays) override this."""
        from .checkpoint import read_state_dict

        return read_state_dict(path)

    def checkpoint_filter(self, role: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Official keys -> ours for ``role`` (drop recomputed buffers, rename). Default: unchanged."""
        return state_dict

    def write_checkpoint(self, role: str, path: str | os.PathLike, wrapper: str | None = None) -> None:
        """Write ``role``'s current weights as its official file (what :meth:`read_checkpoint` reads
        back): a torch state dict, under the key ``wrapper`` if given (BasicSR's ``params``). Models
        whose official files are not torch files (SRNTT's TensorLayer arrays) override this."""
        sd = {k: v.detach().cpu().clone().contiguous() for k, v in self.checkpoint_modules()[role].state_dict().items()}
        torch.save({wrapper: sd} if wrapper else sd, path)
