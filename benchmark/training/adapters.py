"""How each model is called during training: its official training-time forward, output RGB in [0, 1].

``model(lr, ref)`` is the evaluation interface (clamped output, official test-time inputs). The
authors' trainers compute the loss on the unclamped network output; a model listed here is called
that way. Models not listed are trained through ``model(lr, ref)``.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from core.resize import pil_bicubic_tensor


def _masa(model, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """MASA-SR trainer: ``net(LR, Ref, Ref_down)`` on BGR [0,1], Ref_down = PIL bicubic /4 (dataset.py)."""
    lr_bgr, ref_bgr = lr.flip(1), ref.flip(1)
    h, w = ref_bgr.shape[-2:]
    ref_down = pil_bicubic_tensor(ref_bgr, (h // model.scale, w // model.scale))
    return model.forward_official(lr_bgr, ref_bgr, ref_down).flip(1)


def _ttsr(model, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """TTSR trainer: ``model(lr, lrsr, ref, refsr)`` in [-1, 1] (LR_sr / Ref_sr by PIL bicubic, cufed.py)."""
    return (model.forward_official(*model.official_inputs(lr, ref))[0] + 1) / 2


def _c2_matching(model, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """C2-Matching stage 3 (RefRestorationModel): correspondences from the frozen contrastive extractor and
    VGG (no gradient), ``net_g(img_in_lq, pre_offset, img_ref_feat)`` unclamped; HR and Ref crops of one size."""
    h, w = lr.shape[-2:]
    if tuple(ref.shape[-2:]) != (4 * h, 4 * w):
        raise ValueError(f"C2-Matching trains on reference crops of the HR crop's size; got LR {h}x{w}, "
                         f"Ref {tuple(ref.shape[-2:])} (set ref_size = crop_size)")
    with torch.no_grad():
        img_in_up = pil_bicubic_tensor(lr, (4 * h, 4 * w))
        pre_offset, ref_feat = model.correspondence(model.extract_features(img_in_up, ref), ref)
    return model.restore(lr, pre_offset, ref_feat)


ADAPTERS: dict[str, Callable] = {"masa": _masa, "ttsr": _ttsr, "c2_matching": _c2_matching}


class TrainForward(nn.Module):
    """Wraps a zoo model so that DDP sees one ``forward(lr, ref)``: the model's training forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.fn = ADAPTERS.get(model.spec.name)

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.fn(self.model, lr, ref) if self.fn else self.model(lr, ref)
