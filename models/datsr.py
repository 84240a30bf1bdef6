"""DATSR (Cao et al., ECCV 2022): Swin U-Net with deformable attention for RefSR, x4.

Three sub-networks, as in the official test pipeline (``RefRestorationModel.test``):
``net_extractor`` (C2-Matching's contrastive VGG16-style extractor), ``net_map`` (patch matching
of those features -> per-scale offsets, flows and match similarities, plus frozen ImageNet VGG19
features of the reference) and ``net_g`` (``SwinUnetv3RestorationNet``: a U-Net of Swin bodies
with similarity-modulated deformable aggregation of the reference features at every level).
Layers and state-dict keys follow caojiezhang/DATSR @32240b58; blocks live in
:mod:`models.datsr_parts`, the parts shared with C2-Matching in :mod:`models.c2_matching_parts`.
"""
from __future__ import annotations

import torch
from torch import nn


from .base import CheckpointFile, MemoryCost, ModelSpec, RefSRModel, WeightTag
from .c2_matching_parts import ContrasExtractorSep, run_on_common_canvas, torchvision_vgg_to_official
from .datsr_parts import FlowSimCorrespondence, SwinUnetv3RestorationNet, drop_swin_buffers
from .registry import register_model

_RELEASES = "https://github.com/caojiezhang/DATSR/releases"
VGG19_FILE = "vgg19-dcbb9e9d.pth"
_EXTRACTOR = CheckpointFile("feature_extraction.pth", role="extractor", url=_RELEASES)
_VGG19 = CheckpointFile(VGG19_FILE, role="vgg19", url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth")
#: the HR side must be a multiple of this: 4 (scale) x 8 (Swin window at the x1 level)
HR_MULTIPLE = 32

SPEC = ModelSpec(
    name="datsr",
    scale=4,
    lr_multiple=1,  # forward pads to the multiple of 8 the Swin windows need, and crops back
    ref_multiple=1,  # forward mod-crops the reference to 32 as the official test does
    # LR 125x125 / Ref 1000x1000 (a 992² canvas) measured at 7,501 MiB peak RSS (docs/reliability.md), so a
    # WR-SR reference runs at full size; the cost (scripts/memory_zoo.py --fit-table over the six measured
    # sizes, scaled so that none is above its estimate) is conservative there (~9.4 GiB) and alone would say 768
    max_ref_side=1000,
    memory=MemoryCost(base_mib=301, per_lr_px=155261, per_ref_px=7389),
    num_refs=1,
    paper="Cao, Liang, Zhang, Li, Zhang, Wang, Van Gool. Reference-based Image Super-Resolution with "
          "Deformable Attention Transformer. ECCV 2022",
    official_repo="https://github.com/caojiezhang/DATSR",
    official_commit="32240b58",
    licence="CC-BY-NC-4.0 (README; portions from C2-Matching MIT and BasicSR Apache-2.0)",
    tags=(
        WeightTag("", (CheckpointFile("restoration_mse.pth", role="net_g", url=_RELEASES), _EXTRACTOR, _VGG19),
                  description="PSNR model (reconstruction loss only; options/test/test_restoration_mse.yml)"),
        WeightTag("gan", (CheckpointFile("restoration_gan.pth", role="net_g", url=_RELEASES), _EXTRACTOR, _VGG19),
                  description="perceptual model (reconstruction + perceptual + adversarial losses; "
                              "options/train/train_restoration_gan.yml)"),
    ),
    test_kwargs={"ngf": 16, "n_blocks": 1, "groups": 2, "depths": (2,), "num_heads": (2,)},
    notes=(
        "Weights: restoration_mse.pth / restoration_gan.pth and feature_extraction.pth from the authors' "
        "GitHub Releases page (the README links the page, not the asset URLs); vgg19 is torchvision's "
        "ImageNet VGG19 file (the official net_map calls vgg19(pretrained=True)). "
        "Sizes: the official test crops HR and reference top-left to a multiple of 32 (4 x the Swin "
        "window 8) and zero-pads both bottom/right to a common size. Here forward() zero-pads the LR "
        "bottom/right so the HR is a multiple of 32 (and at least the cropped reference), pads the "
        "reference to the same size, and crops the output back: no pixel of the input is dropped, so "
        "harness multiples are 1; the LR is padded (not made from a padded HR), which differs from the "
        "official pipeline only next to the padded border. The reference is mod-cropped to 32 like the "
        "official test (a side under 32 is kept and padded). "
        "Official files carry the Swin buffers relative_position_index (40) and attn_mask (20, for the "
        "160/80/40 construction sizes); checkpoint_filter checks them against the recomputed values "
        "and drops them; masks are recomputed per runtime size, as the official blocks do whenever "
        "the runtime size differs from the construction size. "
        "net_g.content_extractor (2.36M params at ngf 128) is loaded and counted but not run: the "
        "official forward computes it and never uses the result. "
        "mmcv modulated_deform_conv2d -> torchvision deform_conv2d; window attention via "
        "scaled_dot_product_attention."),
)


class DATSR(RefSRModel):
    """forward(lr, ref) -> sr, RGB in [0,1]; the official preprocessing happens inside."""

    spec = SPEC

    def __init__(self, ngf: int = 128, n_blocks: int = 8, groups: int = 8, embed_dim: int = 128,
                 depths=(4, 4), num_heads=(4, 4), window_size: int = 8, patch_size: int = 3,
                 match_chunk_elems: int = 1 << 25):
        super().__init__()
        self.net_g = SwinUnetv3RestorationNet(ngf, n_blocks, groups, embed_dim, depths, num_heads, window_size)
        self.net_extractor = ContrasExtractorSep()
        self.net_map = FlowSimCorrespondence(patch_size, match_chunk_elems)

    # -- the three official steps, exposed for parity checks ------------------------------------
    def extract_features(self, img_in_up: torch.Tensor, img_ref: torch.Tensor) -> dict[str, torch.Tensor]:
        """Official net_extractor: contrastive features of the bicubic-upsampled LR and of the reference."""
        return self.net_extractor(img_in_up, img_ref)

    def correspondence(self, features: dict[str, torch.Tensor], img_ref: torch.Tensor):
        """Official net_map: ``[pre_offset, pre_flow, pre_similarity], img_ref_feat``."""
        return self.net_map(features, img_ref)

    def restore(self, img_in_lq: torch.Tensor, pre_offset_flow_sim, img_ref_feat) -> torch.Tensor:
        """Official net_g output (not clamped)."""
        return self.net_g(img_in_lq, pre_offset_flow_sim, img_ref_feat)

    def forward_official(self, img_in_lq: torch.Tensor, img_in_up: torch.Tensor, img_ref: torch.Tensor
                         ) -> torch.Tensor:
        """The official test step on official inputs (RGB [0,1]; HR-sized inputs a multiple of 32)."""
        pre, ref_feat = self.correspondence(self.extract_features(img_in_up, img_ref), img_ref)
        return self.restore(img_in_lq, pre, ref_feat)

    # -- our interface ----------------------------------------------------------------------------
    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        m = HR_MULTIPLE
        hr, wr = ref.shape[-2:]
        ref = ref[..., : hr // m * m if hr >= m else hr, : wr // m * m if wr >= m else wr]
        return run_on_common_canvas(self.forward_official, lr, ref, multiple=m)

    # -- official checkpoints ---------------------------------------------------------------------
    def checkpoint_modules(self) -> dict[str, nn.Module]:
        return {"net_g": self.net_g, "extractor": self.net_extractor, "vgg19": self.net_map}

    def checkpoint_filter(self, role: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """net_g: check and drop the Swin buffers; vgg19: torchvision keys -> official ``vgg.*``."""
        if role == "net_g":
            return drop_swin_buffers(state_dict)
        if role == "vgg19" and "features.0.weight" in state_dict:
            return torchvision_vgg_to_official(state_dict)
        return state_dict


@register_model(SPEC)
def datsr(**kwargs) -> DATSR:
    return DATSR(**kwargs)
