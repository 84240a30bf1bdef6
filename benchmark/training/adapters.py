"""How each model is called during training: its official training-time forward, output RGB in [0, 1].

``model(lr, ref)`` is the evaluation interface (clamped output, official test-time inputs). The
authors' trainers compute the loss on the unclamped network output; a model listed here is called
that way. Models not listed are trained through ``model(lr, ref)``. An adapter returns the image, or
(image, extras) when a loss asks for extras it provides (TTSR, SRNTT: ``texture``).

A stage that trains a role other than the image output has a role adapter (``ROLE_ADAPTERS``):
C2-Matching's contrastive stages train ``extractor`` and output its features.
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


def _ttsr(model, lr: torch.Tensor, ref: torch.Tensor, needs=()):
    """TTSR trainer: ``model(lr, lrsr, ref, refsr)`` in [-1, 1] (LR_sr / Ref_sr by PIL bicubic, cufed.py).

    ``texture``: the official trainer's ``model(sr=sr)``, the LTE's features of the output through a
    copy of the LTE (``LTE_copy``: the gradient reaches the output, not the LTE), paired with the
    transferred textures T_lv3, T_lv2, T_lv1 for the transferal perceptual loss.
    """
    out, _, t3, t2, t1 = model.forward_official(*model.official_inputs(lr, ref))
    sr = (out + 1) / 2
    if "texture" not in needs:
        return sr
    frozen = {k: v.detach() for k, v in model.LTE.named_parameters()}
    lv1, lv2, lv3 = torch.func.functional_call(model.LTE, frozen, (sr,))
    return sr, {"texture": [(lv3, t3), (lv2, t2), (lv1, t1)]}


def _c2_correspondence(model, lr: torch.Tensor, ref: torch.Tensor):
    """RefRestorationModel.optimize_parameters, first half: correspondences from the frozen contrastive
    extractor and VGG (no gradient) on the PIL-bicubic-upsampled LR; HR and Ref crops of one size."""
    h, w = lr.shape[-2:]
    if tuple(ref.shape[-2:]) != (4 * h, 4 * w):
        raise ValueError(f"{model.spec.name} trains on reference crops of the HR crop's size; got LR {h}x{w}, "
                         f"Ref {tuple(ref.shape[-2:])} (set ref_size = crop_size)")
    with torch.no_grad():
        return model.correspondence(model.extract_features(pil_bicubic_tensor(lr, (4 * h, 4 * w)), ref), ref)


def _c2_family(model, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """C2-Matching stage 3, DATSR and SSMTF: ``net_g(img_in_lq, pre_offset, img_ref_feat)``, unclamped."""
    return model.restore(lr, *_c2_correspondence(model, lr, ref))


def _frfsr(model, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """FRFSR: as C2-Matching, plus the frozen RRDB's LR features (``sife``; its parameters are not optimised)."""
    (offset, flow, _), ref_feat = _c2_correspondence(model, lr, ref)
    with torch.no_grad():
        sife = model.sife(lr)
    return model.restore(lr, sife, offset, flow, ref_feat)


def _srntt(model, lr: torch.Tensor, ref: torch.Tensor, needs=()):
    """SRNTT trainer: ``net_srntt`` (content extractor -> texture transfer) on the LR in [-1, 1] and the
    swapped maps; its tanh output is the image the losses see (``forward`` does nothing more). The maps
    come from the model's own matching (frozen VGG19), the test-time one; the official trainer reads
    maps swapped offline.

    ``texture``: the frozen VGG19's relu3_1, relu2_1, relu1_1 of the output (the official ``net_vgg_sr``;
    the gradient reaches the output, not the VGG), paired with the swapped maps M_3, M_2, M_1.
    """
    sr, maps = model.forward_with_maps(lr, ref)
    if "texture" not in needs:
        return sr
    feats = model.vgg(sr)
    return sr, {"texture": [(feats["relu3_1"], maps[0]), (feats["relu2_1"], maps[1]), (feats["relu1_1"], maps[2])]}



def _extractor(model, lr: torch.Tensor, ref: torch.Tensor, inputs: dict) -> dict[str, torch.Tensor]:
    """C2-Matching's contrastive stages: ``net_extractor(query, ref)`` features (TeacherContrasModel: the HR;
    StudentContrasDistillationModel: the upsampled LR), ``query`` from the recipe's ``pairs`` data."""
    if "query" not in inputs:
        raise ValueError(f"training {model.spec.name}'s extractor needs a recipe with 'pairs' (synthetic warped "
                         f"pairs with their ground truth)")
    return model.extract_features(inputs["query"], ref)


def _def(model, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """DEF: the texture-transfer network on the detail-enhanced image, unclamped. The enhancement (DDNM
    with the frozen denoiser, the model's own steps and seeds) runs without gradient, as at test time."""
    return model.transfer(lr, model.enhance(lr), ref)


ROLE_ADAPTERS: dict[str, Callable] = {"extractor": _extractor}
ADAPTERS: dict[str, Callable] = {"masa": _masa, "ttsr": _ttsr, "c2_matching": _c2_family, "datsr": _c2_family,
                                 "frfsr": _frfsr, "srntt": _srntt, "ssmtf": _c2_family, "def": _def}
EXTRAS = {"ttsr": ("texture",), "srntt": ("texture",)}  # what each adapter can hand to the losses besides the image


class TrainForward(nn.Module):
    """Wraps a zoo model so that DDP sees one ``forward(lr, ref)``: the model's training forward."""

    def __init__(self, model: nn.Module, roles: list[str] | None = None):
        super().__init__()
        self.model = model
        self.fn = ADAPTERS.get(model.spec.name)
        self.role_fn = ROLE_ADAPTERS.get((roles or [""])[0]) if len(roles or ()) == 1 else None

    def forward(self, lr: torch.Tensor, ref: torch.Tensor, needs: tuple = (), inputs: dict | None = None):
        """(sr, extras): the training output in [0, 1] and the extras named in ``needs``; a role adapter's
        output (features) instead when the run trains such a role. ``inputs``: the batch's other tensors."""
        if self.role_fn is not None:
            return self.role_fn(self.model, lr, ref, inputs or {}), {}
        missing = set(needs) - set(EXTRAS.get(self.model.spec.name, ()))
        if missing:
            raise ValueError(f"{self.model.spec.name}'s training forward provides no {sorted(missing)} "
                             f"(a loss of the recipe needs it)")
        out = (self.fn(self.model, lr, ref, needs) if needs else self.fn(self.model, lr, ref)) if self.fn \
            else self.model(lr, ref)
        return out if isinstance(out, tuple) else (out, {})
