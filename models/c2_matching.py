"""C2-Matching (Jiang et al., CVPR 2021): contrastive correspondence + dynamic aggregation, x4.

Three sub-networks, as in the official test pipeline (``RefRestorationModel.test``):
``net_extractor`` (contrastive VGG16-style features of the upsampled LR and of the reference),
``net_map`` (patch matching of those features -> per-scale offsets, plus frozen ImageNet VGG19
features of the reference) and ``net_g`` (restoration with deformable aggregation). Layers and
state-dict keys follow yumingj/C2-Matching @6d60149e; blocks live in :mod:`models.c2_matching_parts`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import CheckpointFile, MemoryCost, ModelSpec, RefSRModel, WeightTag
from .c2_matching_parts import (ContrasExtractorSep, RestorationNet, VGGFeatureExtractor, index_to_flow,
                                patch_match_index, run_on_common_canvas, shifted_offsets,
                                torchvision_vgg_to_extractor, torchvision_vgg_to_official, upscale_flow)
from .registry import register_model

_DRIVE = "https://drive.google.com/drive/folders/1dTkXMzeBrHelVQUEx5zib5MdmvqDaSd9"
VGG19_FILE = "vgg19-dcbb9e9d.pth"
_EXTRACTOR = CheckpointFile("feature_extraction.pth", "extractor", _DRIVE)
_VGG19 = CheckpointFile(VGG19_FILE, "vgg19", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth")

SPEC = ModelSpec(
    name="c2_matching",
    scale=4,
    lr_multiple=1,
    ref_multiple=4,  # the official test pipeline mod-crops the reference to a multiple of 4
    # WR-SR: LR 125x125 with Ref 1000x1000 measured at 7,840 MiB peak (docs/reliability.md); the cost model
    # (scripts/memory_zoo.py --fit) is conservative there: 8.6 GiB extra estimated, 6.9 GiB measured
    max_ref_side=1000,
    memory=MemoryCost(base_mib=40, per_lr_px=101122, per_ref_px=7475, per_lr_ref_px=0.00889),
    num_refs=1,
    paper="Jiang, Chan, Wang, Loy, Liu. Robust Reference-based Super-Resolution via C2-Matching. "
          "CVPR 2021",
    official_repo="https://github.com/yumingj/C2-Matching",
    official_commit="6d60149e",
    licence="Apache-2.0 (LICENSE file; the README says MIT)",
    tags=(
        WeightTag("", (CheckpointFile("c2_matching_restoration_mse.pth", "net_g", _DRIVE), _EXTRACTOR, _VGG19),
                  "restoration trained with the reconstruction loss (the paper's PSNR model)"),
        WeightTag("gan", (CheckpointFile("c2_matching_restoration.pth", "net_g", _DRIVE), _EXTRACTOR, _VGG19),
                  "restoration trained with perceptual and adversarial losses added"),
    ),
    test_kwargs={"ngf": 16, "n_blocks": 1, "groups": 2},
    notes="net_g: c2_matching_restoration_mse.pth (PSNR model) or c2_matching_restoration.pth (GAN "
          "model), both from the authors' Google Drive folder. vgg19 is torchvision's ImageNet VGG19 "
          "(the official code calls vgg19(pretrained=True)); the user places the file. Reference and "
          "HR are zero-padded bottom/right to a common size as the official test does (it pads the HR "
          "before downsampling; here the LR is padded, which differs only next to the padded border).",
)


class C2Matching(RefSRModel):
    """forward(lr, ref) -> sr, RGB in [0,1]; the official preprocessing happens inside."""

    spec = SPEC

    def __init__(self, ngf: int = 64, n_blocks: int = 16, groups: int = 8, patch_size: int = 3,
                 match_chunk_elems: int = 1 << 25):
        super().__init__()
        self.net_g = RestorationNet(ngf, n_blocks, groups)
        self.net_extractor = ContrasExtractorSep()
        self.net_map = _MapNet()
        self.patch_size = patch_size
        self.match_chunk_elems = match_chunk_elems
        # channels_last: the same convolutions run ~2x faster on CPU (oneDNN); results agree to ~1e-6
        self.to(memory_format=torch.channels_last)

    # -- the three official steps, exposed for parity checks ------------------------------------
    def extract_features(self, img_in_up: torch.Tensor, img_ref: torch.Tensor) -> dict[str, torch.Tensor]:
        """Contrastive features of the bicubic-upsampled LR and of the reference (official net_extractor)."""
        return self.net_extractor(_cl(img_in_up), _cl(img_ref))

    def correspondence(self, features: dict[str, torch.Tensor], img_ref: torch.Tensor
                       ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Official net_map: matched offsets per VGG layer ((B,9,h,w,2), [x, y]) and VGG19 ref features."""
        flows = []
        k = self.patch_size
        for f_in, f_ref in zip(features["dense_features1"], features["dense_features2"]):
            f_in = F.normalize(f_in, dim=0)
            f_ref = F.normalize(f_ref, dim=0)
            idx = patch_match_index(f_in, f_ref, k, self.match_chunk_elems)
            flows.append(index_to_flow(idx, f_ref.shape[-1] - k + 1, k - 1))
        flow = torch.stack(flows)
        pre_offset = {"relu3_1": shifted_offsets(flow, 1, k),
                      "relu2_1": shifted_offsets(upscale_flow(flow, 2), 2, k),
                      "relu1_1": shifted_offsets(upscale_flow(flow, 4), 4, k)}
        return pre_offset, self.net_map.vgg(_cl(img_ref))

    def restore(self, img_in_lq: torch.Tensor, pre_offset: dict[str, torch.Tensor],
                img_ref_feat: dict[str, torch.Tensor]) -> torch.Tensor:
        """Official net_g output (not clamped)."""
        return self.net_g(_cl(img_in_lq), pre_offset, {k: _cl(v) for k, v in img_ref_feat.items()})

    # -- our interface ----------------------------------------------------------------------------
    def forward_official(self, img_in_lq: torch.Tensor, img_in_up: torch.Tensor, img_ref: torch.Tensor) -> torch.Tensor:
        """The official test step on the official inputs (RGB [0,1]); unclamped."""
        pre_offset, ref_feat = self.correspondence(self.extract_features(img_in_up, img_ref), img_ref)
        return self.restore(img_in_lq, pre_offset, ref_feat)

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        ref = ref[..., : ref.shape[-2] // 4 * 4, : ref.shape[-1] // 4 * 4]  # the official mod-crop
        return run_on_common_canvas(self.forward_official, lr, ref)

    # -- official checkpoints ---------------------------------------------------------------------
    def checkpoint_modules(self) -> dict[str, torch.nn.Module]:
        """``net_g`` (restoration), ``extractor`` (feature_extraction.pth), ``vgg19`` (ImageNet VGG19)."""
        return {"net_g": self.net_g, "extractor": self.net_extractor, "vgg19": self.net_map}

    def checkpoint_filter(self, role: str, state_dict: dict) -> dict:
        """``vgg19`` accepts torchvision's ImageNet file (``features.N.*``) or the official net_map's keys;
        ``extractor`` also takes torchvision's VGG16 file (both branches; how the contrastive stages start)."""
        if role == "vgg19" and "features.0.weight" in state_dict:
            return torchvision_vgg_to_official(state_dict)
        if role == "extractor" and "features.0.weight" in state_dict:
            return torchvision_vgg_to_extractor(state_dict)
        return state_dict


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


class _MapNet(torch.nn.Module):
    """Holds the official net_map's only weights (``vgg.*``) so its state dict loads unchanged."""

    def __init__(self):
        super().__init__()
        self.vgg = VGGFeatureExtractor()


@register_model(SPEC)
def c2_matching(**kwargs) -> C2Matching:
    return C2Matching(**kwargs)
