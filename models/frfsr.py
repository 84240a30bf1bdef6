"""FRFSR (Mei, Yang et al., arXiv 2306.01500): C2-Matching's correspondence + DDF U-Net + SIFE, x4.

Four sub-networks, as in the official test pipeline (``RefRestorationModel.test`` of
Yi-Yang355/FRFSR @72122649, a drop-in over yumingj/C2-Matching):
``net_extractor`` (C2-Matching's contrastive VGG16-style features of the upsampled LR and of the
reference), ``net_map`` (patch matching of those features -> per-scale offsets, flows and
similarities, plus frozen ImageNet VGG19 features of the reference), ``sisr`` (a frozen ESRGAN
RRDB trunk: the single-image feature embedding, SIFE) and ``net_g`` (official
``SwinUnetv3RestorationNet(64, 16, 8)``: a three-scale U-Net with deformable aggregation and
decoupled dynamic filters). The extractor, the VGG19 map, the matching and the deformable
aggregation are reused from :mod:`models.c2_matching_parts`; the rest is in :mod:`models.frfsr_parts`.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.resize import pil_bicubic_tensor

from .base import CheckpointFile, MemoryCost, ModelSpec, RefSRModel, WeightTag
from .c2_matching_parts import (ContrasExtractorSep, VGGFeatureExtractor, index_to_flow, patch_match_index,
                                shifted_offsets, torchvision_vgg_to_official, upscale_flow)
from .checkpoint import CheckpointError, unwrap
from .frfsr_parts import FRFSRRestorationNet, RRDBNet
from .registry import register_model

_C2_DRIVE = "https://drive.google.com/drive/folders/1dTkXMzeBrHelVQUEx5zib5MdmvqDaSd9"
_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
#: the ESA of every residual block needs a side >= 15 at the LR scale (stride-2 valid conv, then
#: a 7x7 max pool with stride 3); smaller LR inputs are zero-padded bottom/right, then cropped
MIN_LR_SIDE = 15


_RRDB = CheckpointFile("frfsr_rrdb_x4.pth", "rrdb")  # not published, not named by the authors
_EXTRACTOR = CheckpointFile("feature_extraction.pth", "extractor", _C2_DRIVE)  # C2-Matching's release
_VGG19 = CheckpointFile("vgg19-dcbb9e9d.pth", "vgg19", _VGG19_URL)

_NOTES = (
    "NO CHECKPOINT IS PUBLISHED: the official README links no weights and the repository has no "
    "options/*.yml. The file names are descriptive. A trained FRFSR needs four files: net_g (the "
    "trainer writes net_g_<iter>.pth, a plain state dict of SwinUnetv3RestorationNet(64,16,8), 1626 "
    "keys, 13,487,071 params); rrdb (path.pretrain_model_rrdb: a BasicSR RRDBNet x4 file "
    "{'params': state_dict}, 702 keys, 16,697,987 params; read from 'params' even when 'params_ema' exists, as the official loader does; the paper says 'the official RRDB "
    "parameters', most likely BasicSR's ESRGAN_PSNR_SRx4_DF2K_official-150ff491.pth, but the "
    "repository names no file; it is frozen during training and not saved with net_g, so it must be "
    "the exact file the net_g was trained with); extractor (C2-Matching's released "
    "feature_extraction.pth, 1,110,656 params); vgg19 (torchvision ImageNet VGG19, the official code "
    "calls vgg19(pretrained=True); its relu3_1 slice has 555,328 params). "
    "Test pipeline as the official RefCUFEDDataset test phase: the reference is mod-cropped to a "
    "multiple of 4 and HR/ref are zero-padded bottom/right to a common size (here the LR is padded, "
    "which differs only next to the padded border); LR sides below 15 (HR below 60) are zero-padded "
    "too because ESA needs them; the output is cropped back. img_in_up = PIL-exact bicubic x4 of the "
    "LR (8-bit, as the official PNG pipeline); RGB in [0,1]. "
    "Official quirks kept: net_g works on the bilinear x4 (align_corners=False) LR upsample (not the "
    "bicubic one) and adds it back; SIFE = RRDB trunk features (upsampling layers unused) enter only "
    "at the LR scale through high_q_conv1(cat[sife, x2]), while the skips after ddf_block_3 and "
    "up_body_small add x2; each scale adds its skip twice (after the DDF block and after the body); "
    "offset convs see cat[feature, flow-warped ref, raw ref] and the DCN samples the raw ref with "
    "matched + learned offsets; the up path's heads see x + x1 / x + x0 but its offsets x alone; "
    "pre_similarity is computed but unused (here only on request); FilterNorm is removed from the "
    "DDF branches (filters unnormalised). The paper's second-stage feature reuse (F_SR^rec fed to "
    "the GAN model, Eq. 18) and TextureNet are not wired in the released code, so both tags run the "
    "same network. "
    "Replaced ops: DCNv2 -> torchvision.ops.deform_conv2d (same [y, x] offset and mask layout); the "
    "CUDA-only DDF op -> a pure-PyTorch tap loop over Tensor.unfold views (frfsr_parts.ddf). "
    "Training-only behaviour (not part of inference): the reference shuffle augmentation "
    "(use_shuffle_size) splits the ref into a fixed 5x5 grid of (h//5, w//5) patches (not the paper's "
    "4x4 'medium' level), permutes them with probability 1/2 and refolds; rows/columns beyond 5*(h//5) "
    "become 0. Paper Table VI: 13.5M (w/o SIFE) + 15.9M (SIFE); Table V: 807 ms per CUFED5 image (GPU)."
)

SPEC = ModelSpec(
    name="frfsr",
    scale=4,
    lr_multiple=1,
    ref_multiple=4,  # the official test mod-crops the reference to a multiple of the scale
    max_ref_side=960,
    memory=MemoryCost(base_mib=79, per_lr_px=97661, per_ref_px=6651),  # scripts/memory_zoo.py --fit
    num_refs=1,
    paper="Mei, Yang, Li, Huang, Zhang, Lio. A Feature Reuse Framework with Texture-adaptive "
          "Aggregation for Reference-based Super-Resolution. arXiv 2306.01500 (2023)",
    official_repo="https://github.com/Yi-Yang355/FRFSR",
    official_commit="72122649",
    licence="MIT",
    tags=(  # no FRFSR weights are published: net_g and rrdb have no url
        WeightTag("", (CheckpointFile("frfsr_rec_net_g.pth", "net_g"), _RRDB, _EXTRACTOR, _VGG19),
                  "Ours-rec: restoration trained with the reconstruction loss only (PSNR model); "
                  "NOT PUBLISHED by the authors"),
        WeightTag("gan", (CheckpointFile("frfsr_gan_net_g.pth", "net_g"), _RRDB, _EXTRACTOR, _VGG19),
                  "Ours: reconstruction + perceptual + adversarial losses; NOT PUBLISHED by the authors"),
    ),
    test_kwargs={"ngf": 16, "n_blocks": 1, "groups": 2, "rrdb_feat": 8, "rrdb_blocks": 1, "rrdb_grow": 4},
    notes=_NOTES,
)


class FRFSR(RefSRModel):
    """forward(lr, ref) -> sr, RGB in [0,1]; the official preprocessing happens inside."""

    spec = SPEC

    def __init__(self, ngf: int = 64, n_blocks: int = 16, groups: int = 8, rrdb_feat: int = 64,
                 rrdb_blocks: int = 23, rrdb_grow: int = 32, patch_size: int = 3,
                 match_chunk_elems: int = 1 << 25):
        super().__init__()
        self.net_g = FRFSRRestorationNet(ngf, n_blocks, groups, sife_channels=rrdb_feat)
        self.sisr = RRDBNet(3, 4, rrdb_feat, rrdb_blocks, rrdb_grow)
        self.net_extractor = ContrasExtractorSep()
        self.net_map = _MapNet()
        self.patch_size = patch_size
        self.match_chunk_elems = match_chunk_elems

    # -- official checkpoints (see RefSRModel hooks) -----------------------------------------------
    def checkpoint_modules(self) -> dict[str, nn.Module]:
        return {"net_g": self.net_g, "rrdb": self.sisr, "extractor": self.net_extractor, "vgg19": self.net_map}

    def read_checkpoint(self, role: str, path) -> dict[str, torch.Tensor]:
        """As the official ``load_network_rrdb``: an RRDB file's ``params`` entry is used even when
        ``params_ema`` exists (the generic unwrap would prefer ``params_ema``)."""
        if role != "rrdb":
            return super().read_checkpoint(role, path)
        if not Path(path).is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # not plain weights: same message shape as read_state_dict
            raise CheckpointError(f"cannot read {path} as plain weights (torch.load weights_only=True): "
                                  f"{type(exc).__name__}: {str(exc)[:200]}") from None
        if isinstance(obj, Mapping) and isinstance(obj.get("params"), Mapping):
            obj = obj["params"]
        return unwrap(obj)

    def checkpoint_filter(self, role: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``vgg19`` also accepts torchvision's ImageNet file (``features.N.*`` keys)."""
        if role == "vgg19" and "features.0.weight" in state_dict:
            return torchvision_vgg_to_official(state_dict)
        return state_dict

    # -- the official steps, exposed for parity checks ---------------------------------------------
    def extract_features(self, img_in_up: torch.Tensor, img_ref: torch.Tensor) -> dict[str, torch.Tensor]:
        """Official net_extractor: contrastive features of the upsampled LR and of the reference."""
        return self.net_extractor(img_in_up, img_ref)

    def correspondence(self, features: dict[str, torch.Tensor], img_ref: torch.Tensor, similarity: bool = False):
        """Official net_map: ``(pre_offset, pre_flow, pre_similarity), img_ref_feat``.

        pre_offset: (B,9,h,w,2) per VGG layer, [x, y]; pre_flow: (B,h,w,2); pre_similarity:
        (B,1,h,w) (unused by net_g: ``None`` unless ``similarity``); img_ref_feat: VGG19 relu1/2/3_1.
        """
        k = self.patch_size
        flows, sims = [], []
        for f_in, f_ref in zip(features["dense_features1"], features["dense_features2"]):
            f_in, f_ref = F.normalize(f_in, dim=0), F.normalize(f_ref, dim=0)
            idx = patch_match_index(f_in, f_ref, k, self.match_chunk_elems)
            flows.append(index_to_flow(idx, f_ref.shape[-1] - k + 1, k - 1))
            if similarity:
                sims.append(F.pad(_matched_similarity(f_in, f_ref, idx, k), (1, 1, 1, 1)))
        flow = torch.stack(flows)
        pre_flow = {"relu3_1": flow, "relu2_1": upscale_flow(flow, 2), "relu1_1": upscale_flow(flow, 4)}
        pre_offset = {"relu3_1": shifted_offsets(pre_flow["relu3_1"], 1, k),
                      "relu2_1": shifted_offsets(pre_flow["relu2_1"], 2, k),
                      "relu1_1": shifted_offsets(pre_flow["relu1_1"], 4, k)}
        pre_similarity = None
        if similarity:
            sim = torch.stack(sims)[:, None]
            pre_similarity = {"relu3_1": sim,
                              "relu2_1": sim.repeat_interleave(2, 2).repeat_interleave(2, 3),
                              "relu1_1": sim.repeat_interleave(4, 2).repeat_interleave(4, 3)}
        return (pre_offset, pre_flow, pre_similarity), self.net_map.vgg(img_ref)

    def sife(self, img_in_lq: torch.Tensor) -> torch.Tensor:
        """Official ``sisr(img_in_lq)``: RRDB trunk features at LR size."""
        return self.sisr(img_in_lq)

    def restore(self, img_in_lq: torch.Tensor, sife: torch.Tensor, pre_offset: dict[str, torch.Tensor],
                pre_flow: dict[str, torch.Tensor], img_ref_feat: dict[str, torch.Tensor]) -> torch.Tensor:
        """Official net_g output (not clamped)."""
        return self.net_g(img_in_lq, sife, pre_offset, pre_flow, img_ref_feat)

    def forward_official(self, img_in_lq: torch.Tensor, img_in_up: torch.Tensor, img_ref: torch.Tensor) -> torch.Tensor:
        """The official test step on official inputs (img_ref at the HR size); unclamped output."""
        (pre_offset, pre_flow, _), ref_feat = self.correspondence(self.extract_features(img_in_up, img_ref), img_ref)
        return self.restore(img_in_lq, self.sife(img_in_lq), pre_offset, pre_flow, ref_feat)

    # -- our interface -------------------------------------------------------------------------------
    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        h, w = lr.shape[-2:]
        ref = ref[..., : ref.shape[-2] // 4 * 4, : ref.shape[-1] // 4 * 4]
        H = max(4 * max(h, MIN_LR_SIDE), ref.shape[-2])
        W = max(4 * max(w, MIN_LR_SIDE), ref.shape[-1])
        lr_p = F.pad(lr, (0, W // 4 - w, 0, H // 4 - h))
        ref_p = F.pad(ref, (0, W - ref.shape[-1], 0, H - ref.shape[-2]))
        img_in_up = pil_bicubic_tensor(lr_p, (H, W))
        sr = self.forward_official(lr_p, img_in_up, ref_p)
        return sr[..., : 4 * h, : 4 * w].clamp(0, 1)


def _matched_similarity(f_in: torch.Tensor, f_ref: torch.Tensor, idx: torch.Tensor, k: int) -> torch.Tensor:
    """Official ``max_val``: cosine of each input patch with its matched reference patch, i.e.
    <p_in, p_ref> / (||p_ref|| + 1e-5) / (||p_in|| + 1e-5) over (c, k, k) patches."""
    p_in = F.unfold(f_in[None], k)[0]  # (c*k*k, ho*wo)
    p_ref = F.unfold(f_ref[None], k)[0][:, idx.flatten()]
    val = (p_in * p_ref).sum(0) / (p_ref.norm(dim=0) + 1e-5) / (p_in.norm(dim=0) + 1e-5)
    return val.view(idx.shape)


class _MapNet(nn.Module):
    """Holds the official net_map's only weights (``vgg.*``) so its state dict loads unchanged."""

    def __init__(self):
        super().__init__()
        self.vgg = VGGFeatureExtractor()


@register_model(SPEC)
def frfsr(**kwargs) -> FRFSR:
    return FRFSR(**kwargs)
