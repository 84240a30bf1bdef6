"""TTSR: Learning Texture Transformer Network for Image Super-Resolution (Yang et al., CVPR 2020).

A re-implementation with the layers, defaults and state-dict keys of the official code
(researchmm/TTSR @550e4c9e, ``TTSR(num_res_blocks="16+16+8+4", n_feats=64)``), so the official
``TTSR.pt`` / ``TTSR-rec.pt`` load unchanged. Differences, all outside the weights:

- ``LTE_copy`` (a frozen copy of the texture extractor, used only by the transferal perceptual
  loss during training) is not part of this inference model; the official trainer does not save
  it either, so its checkpoints load strictly (``LTE_copy.*`` keys of a full-module state dict are
  dropped on loading: the official code overwrites that copy from ``LTE`` whenever it uses it).
- The relevance matrix of the Search-Transfer module is computed in chunks of LR rows, as a
  3x3 box sum of per-pixel feature correlations (9x fewer multiply-adds than correlating unfolded
  3x3 patches, same value up to float rounding), and the texture transfer gathers 3x3 blocks
  instead of unfolding the whole reference: bounded memory on full-size references.
- Activations run channels-last with in-place ReLUs and residual additions (faster CPU convs;
  the same values up to float rounding).
- The official VGG19 initialisation of the texture extractor (``torchvision`` ImageNet weights,
  only relevant for training from scratch) is replaced by the default initialisation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import CheckpointFile, MemoryCost, ModelSpec, RefSRModel, WeightTag
from .registry import register_model
from core.resize import pil_bicubic_tensor

_WEIGHTS_URL = ("https://github.com/researchmm/TTSR#model (OneDrive https://1drv.ms/u/s!Ajav6U_IU-1gmHZstHQxOTn9MLPh, "
                "Google Drive https://drive.google.com/drive/folders/1CTm-r3hSbdYVCySuQ27GsrqXhhVOS-qh, "
                "Baidu https://pan.baidu.com/s/1j9swBtz14WneuMYgTLkWtA code 0u6i)")
_DRIVE = "https://drive.google.com/drive/folders/1CTm-r3hSbdYVCySuQ27GsrqXhhVOS-qh"  # holds TTSR.pt, TTSR-rec.pt
_COMMON = dict(
    scale=4, lr_multiple=1, ref_multiple=4, num_refs=1,
    max_ref_side=2560, memory=MemoryCost(base_mib=42, per_lr_px=69530, per_ref_px=706),  # scripts/memory_zoo.py --fit
    paper="Yang, Yang, Fu, Lu, Guo. Learning Texture Transformer Network for Image Super-Resolution. "
          "CVPR 2020 (arXiv:2006.04139)",
    official_repo="https://github.com/researchmm/TTSR",
    official_commit="550e4c9e525b5860083a00c5f936e4bfe2428da2",
    licence="MIT",
    test_kwargs={"num_res_blocks": (1, 1, 1, 1), "n_feats": 8},
)
_NOTES = ("Inputs follow the official test code: Ref cropped to a multiple of 4, LR_sr = PIL bicubic x4 "
          "of the 8-bit LR, Ref_sr = PIL bicubic down-up (x1/4, x4) of the 8-bit Ref, all in [-1,1]. "
          "Parameters: 6,729,615 (equal to the official state dict as saved by its trainer, without "
          "LTE_copy; the official module including LTE_copy holds 7,284,955).")
SPEC = ModelSpec(
    name="ttsr",
    tags=(WeightTag("", (CheckpointFile("TTSR.pt", url=_WEIGHTS_URL, download=_DRIVE),),
                    "trained with all losses (reconstruction, perceptual, transferal perceptual, adversarial)"),
          WeightTag("rec", (CheckpointFile("TTSR-rec.pt", url=_WEIGHTS_URL, download=_DRIVE),),
                    "trained with the reconstruction loss only (the PSNR model of the paper's tables)")),
    notes=_NOTES, **_COMMON)

# --------------------------------------------------------------------------- main network


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, 1, 0)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1)


def _relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU in place: every call site passes a fresh conv / pixel-shuffle output."""
    return F.relu(x, inplace=True)


def _up(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bicubic upsampling exactly as the official MainNet calls it."""
    return F.interpolate(x, scale_factor=factor, mode="bicubic")


class ResBlock(nn.Module):
    """conv-ReLU-conv with an identity skip (no batch norm)."""

    def __init__(self, n_feats: int, res_scale: float = 1.0):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = conv3x3(n_feats, n_feats)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(n_feats, n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu(self.conv1(x)))
        return (out.mul_(self.res_scale) if self.res_scale != 1 else out).add_(x)


def _res_blocks(n: int, n_feats: int, res_scale: float) -> nn.ModuleList:
    return nn.ModuleList(ResBlock(n_feats, res_scale) for _ in range(n))


class SFE(nn.Module):
    """Shallow feature extraction of the LR image."""

    def __init__(self, num_res_blocks: int, n_feats: int, res_scale: float):
        super().__init__()
        self.conv_head = conv3x3(3, n_feats)
        self.RBs = _res_blocks(num_res_blocks, n_feats, res_scale)
        self.conv_tail = conv3x3(n_feats, n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _relu(self.conv_head(x))
        y = x
        for rb in self.RBs:
            y = rb(y)
        return self.conv_tail(y).add_(x)


class CSFI2(nn.Module):
    """Cross-scale feature integration between the x1 and x2 branches."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.conv12 = conv1x1(n_feats, n_feats)
        self.conv21 = conv3x3(n_feats, n_feats, 2)
        self.conv_merge1 = conv3x3(n_feats * 2, n_feats)
        self.conv_merge2 = conv3x3(n_feats * 2, n_feats)

    def forward(self, x1, x2):
        x12 = _relu(self.conv12(_up(x1, 2)))
        x21 = _relu(self.conv21(x2))
        return (_relu(self.conv_merge1(torch.cat((x1, x21), 1))),
                _relu(self.conv_merge2(torch.cat((x2, x12), 1))))


class CSFI3(nn.Module):
    """Cross-scale feature integration between the x1, x2 and x4 branches."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.conv12 = conv1x1(n_feats, n_feats)
        self.conv13 = conv1x1(n_feats, n_feats)
        self.conv21 = conv3x3(n_feats, n_feats, 2)
        self.conv23 = conv1x1(n_feats, n_feats)
        self.conv31_1 = conv3x3(n_feats, n_feats, 2)
        self.conv31_2 = conv3x3(n_feats, n_feats, 2)
        self.conv32 = conv3x3(n_feats, n_feats, 2)
        self.conv_merge1 = conv3x3(n_feats * 3, n_feats)
        self.conv_merge2 = conv3x3(n_feats * 3, n_feats)
        self.conv_merge3 = conv3x3(n_feats * 3, n_feats)

    def forward(self, x1, x2, x3):
        x12 = _relu(self.conv12(_up(x1, 2)))
        x13 = _relu(self.conv13(_up(x1, 4)))
        x21 = _relu(self.conv21(x2))
        x23 = _relu(self.conv23(_up(x2, 2)))
        x31 = _relu(self.conv31_2(_relu(self.conv31_1(x3))))
        x32 = _relu(self.conv32(x3))
        return (_relu(self.conv_merge1(torch.cat((x1, x21, x31), 1))),
                _relu(self.conv_merge2(torch.cat((x2, x12, x32), 1))),
                _relu(self.conv_merge3(torch.cat((x3, x13, x23), 1))))


class MergeTail(nn.Module):
    """Fuses the three scales at x4 and maps to RGB in [-1, 1]."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.conv13 = conv1x1(n_feats, n_feats)
        self.conv23 = conv1x1(n_feats, n_feats)
        self.conv_merge = conv3x3(n_feats * 3, n_feats)
        self.conv_tail1 = conv3x3(n_feats, n_feats // 2)
        self.conv_tail2 = conv1x1(n_feats // 2, 3)

    def forward(self, x1, x2, x3):
        x13 = _relu(self.conv13(_up(x1, 4)))
        x23 = _relu(self.conv23(_up(x2, 2)))
        x = _relu(self.conv_merge(torch.cat((x3, x13, x23), 1)))
        return self.conv_tail2(self.conv_tail1(x)).clamp(-1, 1)


class MainNet(nn.Module):
    """The SR backbone: three stacked texture transformers fused by CSFI (official layout)."""

    def __init__(self, num_res_blocks: tuple[int, int, int, int], n_feats: int, res_scale: float):
        super().__init__()
        n0, n1, n2, n3 = num_res_blocks
        self.SFE = SFE(n0, n_feats, res_scale)
        self.conv11_head = conv3x3(256 + n_feats, n_feats)
        self.RB11 = _res_blocks(n1, n_feats, res_scale)
        self.conv11_tail = conv3x3(n_feats, n_feats)
        self.conv12 = conv3x3(n_feats, n_feats * 4)
        self.ps12 = nn.PixelShuffle(2)
        self.conv22_head = conv3x3(128 + n_feats, n_feats)
        self.ex12 = CSFI2(n_feats)
        self.RB21 = _res_blocks(n2, n_feats, res_scale)
        self.RB22 = _res_blocks(n2, n_feats, res_scale)
        self.conv21_tail = conv3x3(n_feats, n_feats)
        self.conv22_tail = conv3x3(n_feats, n_feats)
        self.conv23 = conv3x3(n_feats, n_feats * 4)
        self.ps23 = nn.PixelShuffle(2)
        self.conv33_head = conv3x3(64 + n_feats, n_feats)
        self.ex123 = CSFI3(n_feats)
        self.RB31 = _res_blocks(n3, n_feats, res_scale)
        self.RB32 = _res_blocks(n3, n_feats, res_scale)
        self.RB33 = _res_blocks(n3, n_feats, res_scale)
        self.conv31_tail = conv3x3(n_feats, n_feats)
        self.conv32_tail = conv3x3(n_feats, n_feats)
        self.conv33_tail = conv3x3(n_feats, n_feats)
        self.merge_tail = MergeTail(n_feats)

    def forward(self, x, S, T_lv3, T_lv2, T_lv1):
        x11 = self.SFE(x)
        # stage 1 (x1): soft-attention-weighted fusion of the transferred lv3 texture
        x11 = (self.conv11_head(torch.cat((x11, T_lv3), 1)) * S).add_(x11)
        r = x11
        for rb in self.RB11:
            r = rb(r)
        x11 = self.conv11_tail(r).add_(x11)

        # stage 2 (x1, x2)
        x21 = x11
        x22 = _relu(self.ps12(self.conv12(x11)))
        x22 = (self.conv22_head(torch.cat((x22, T_lv2), 1)) * _up(S, 2)).add_(x22)
        r21, r22 = self.ex12(x21, x22)
        for rb21, rb22 in zip(self.RB21, self.RB22):
            r21, r22 = rb21(r21), rb22(r22)
        x21 = self.conv21_tail(r21).add_(x21)
        x22 = self.conv22_tail(r22).add_(x22)

        # stage 3 (x1, x2, x4)
        x31, x32 = x21, x22
        x33 = _relu(self.ps23(self.conv23(x22)))
        x33 = (self.conv33_head(torch.cat((x33, T_lv1), 1)) * _up(S, 4)).add_(x33)
        r31, r32, r33 = self.ex123(x31, x32, x33)
        for rb31, rb32, rb33 in zip(self.RB31, self.RB32, self.RB33):
            r31, r32, r33 = rb31(r31), rb32(r32), rb33(r33)
        x31 = self.conv31_tail(r31).add_(x31)
        x32 = self.conv32_tail(r32).add_(x32)
        x33 = self.conv33_tail(r33).add_(x33)
        return self.merge_tail(x31, x32, x33)


# --------------------------------------------------------------------------- texture extractor


class MeanShift(nn.Conv2d):
    """Fixed 1x1 conv mapping [0,1] RGB to ImageNet-normalised RGB (saved in the checkpoints)."""

    def __init__(self, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        super().__init__(3, 3, 1)
        std_t = torch.tensor(std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std_t.view(3, 1, 1, 1)
        self.bias.data = -torch.tensor(mean) / std_t
        self.weight.requires_grad = False
        self.bias.requires_grad = False


class LTE(nn.Module):
    """Learnable texture extractor: VGG19 conv1_1 … relu3_1, torchvision ``features`` indices."""

    def __init__(self):
        super().__init__()
        self.slice1 = nn.Sequential()
        self.slice1.add_module("0", nn.Conv2d(3, 64, 3, 1, 1))
        self.slice1.add_module("1", nn.ReLU(inplace=True))
        self.slice2 = nn.Sequential()
        for i, layer in zip(range(2, 7), (nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
                                           nn.Conv2d(64, 128, 3, 1, 1), nn.ReLU(inplace=True))):
            self.slice2.add_module(str(i), layer)
        self.slice3 = nn.Sequential()
        for i, layer in zip(range(7, 12), (nn.Conv2d(128, 128, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
                                            nn.Conv2d(128, 256, 3, 1, 1), nn.ReLU(inplace=True))):
            self.slice3.add_module(str(i), layer)
        self.sub_mean = MeanShift()

    def forward(self, x: torch.Tensor):
        """``x`` RGB in [0, 1] -> (relu1_1, relu2_1, relu3_1) features at x1, x1/2, x1/4."""
        lv1 = self.slice1(self.sub_mean(x))
        lv2 = self.slice2(lv1)
        return lv1, lv2, self.slice3(lv2)


# --------------------------------------------------------------------------- search and transfer


def relevance(q: torch.Tensor, k: torch.Tensor, chunk_elements: int = 2 ** 24):
    """Hard and soft attention of TTSR for one image: best 3x3 patch of ``k`` for each of ``q``.

    ``q`` (C,H,W) query features (LR up), ``k`` (C,Hr,Wr) key features (Ref down-up). The relevance
    of LR position p and Ref position r is the cosine between their zero-padded 3x3 patches. The
    patch dot product is computed as a 3x3 diagonal box sum of per-pixel dot products (one GEMM
    over C instead of 9C), LR rows in chunks of about ``chunk_elements`` relevance values.
    Returns (max relevance (H,W), argmax index into Hr*Wr (H,W)).
    """
    C, H, W = q.shape
    _, Hr, Wr = k.shape
    qp = _pad_hwc(q, 1, 1, 1).reshape(-1, C)  # ((H+2)*(W+2), C) pixel rows
    kp = _pad_hwc(k, 1, 1, 1).reshape(-1, C)
    k_norm = _patch_norm(k).reshape(-1)
    rows = max(1, chunk_elements // (W * Hr * Wr))
    best, arg = [], []
    for i0 in range(0, H, rows):
        n = min(rows, H - i0)
        g = (qp[i0 * (W + 2):(i0 + n + 2) * (W + 2)] @ kp.t()).view(n + 2, W + 2, Hr + 2, Wr + 2)
        g = g[:, 0:W, :, 0:Wr] + g[:, 1:W + 1, :, 1:Wr + 1] + g[:, 2:W + 2, :, 2:Wr + 2]
        r = g[0:n, :, 0:Hr] + g[1:n + 1, :, 1:Hr + 1] + g[2:n + 2, :, 2:Hr + 2]
        r = r.reshape(n * W, Hr * Wr).div_(k_norm)
        v, i = r.max(dim=1)
        best.append(v)
        arg.append(i)
    best = torch.cat(best).view(H, W) / _patch_norm(q)
    return best, torch.cat(arg).view(H, W)


def _pad_hwc(x: torch.Tensor, s: int, h: int, w: int) -> torch.Tensor:
    """(C,H,W) -> zero-padded (H',W',C) with ``s`` before and ``h``/``w`` after (free view if channels-last)."""
    return F.pad(x.permute(1, 2, 0), (0, 0, s, w, s, h))


def _patch_norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm of every zero-padded 3x3 patch of ``x`` (C,H,W), clamped like ``F.normalize``."""
    sq = F.avg_pool2d(x.square().sum(0, keepdim=True), 3, 1, 1, count_include_pad=True) * 9
    return sq[0].sqrt().clamp_min(1e-12)


def transfer(feat: torch.Tensor, arg: torch.Tensor, s: int) -> torch.Tensor:
    """Texture transfer of one level: fold of the ``3s``x``3s`` reference patches picked by ``arg``.

    Equals the official unfold(kernel 3s, stride s, padding s) -> gather -> fold -> /9, computed on
    s x s blocks of ``feat`` (C, s*Hr(+), s*Wr(+)): only H*W*9 blocks are gathered (whole rows of
    memory), never the unfolded reference. ``arg`` (H,W) indexes the Hr*Wr lv3 grid.
    """
    H, W = arg.shape
    C = feat.shape[0]
    Hr, Wr = feat.shape[1] // s, feat.shape[2] // s
    # zero padding s before, and after up to (Hr+2) x (Wr+2) blocks (pixels past them reach no patch)
    padded = _pad_hwc(feat, s, s * (Hr + 1) - feat.shape[1], s * (Wr + 1) - feat.shape[2])
    blocks = padded.reshape(Hr + 2, s, Wr + 2, s, C).transpose(1, 2).reshape((Hr + 2) * (Wr + 2), s * s * C)
    ri, rj = arg.div(Wr, rounding_mode="floor"), arg.remainder(Wr)
    out = feat.new_zeros(H + 2, W + 2, s * s * C)
    for a in range(3):
        for b in range(3):
            idx = ((ri + a) * (Wr + 2) + rj + b).reshape(-1)
            out[a:a + H, b:b + W] += blocks.index_select(0, idx).view(H, W, -1)
    out = out.view(H + 2, W + 2, s, s, C).transpose(1, 2).reshape(s * (H + 2), s * (W + 2), C)
    return out[s:s * (H + 1), s:s * (W + 1)].permute(2, 0, 1) / 9.0


# --------------------------------------------------------------------------- model


class TTSR(RefSRModel):
    """TTSR with the official sub-module names (``MainNet``, ``LTE``) and defaults."""

    def __init__(self, num_res_blocks: tuple[int, int, int, int] = (16, 16, 8, 4), n_feats: int = 64,
                 res_scale: float = 1.0, chunk_elements: int = 2 ** 24):
        super().__init__()
        self.MainNet = MainNet(tuple(num_res_blocks), n_feats, res_scale)
        self.LTE = LTE()
        self.chunk_elements = chunk_elements

    def checkpoint_filter(self, role: str, state_dict: dict) -> dict:
        """Drop ``LTE_copy.*`` (in full-module state dicts only): it is re-copied from ``LTE`` when used."""
        return {k: v for k, v in state_dict.items() if not k.startswith("LTE_copy.")}

    def search_transfer(self, lrsr_lv3, refsr_lv3, ref_lv1, ref_lv2, ref_lv3):
        """Official SearchTransfer outputs (S, T_lv3, T_lv2, T_lv1), one batch element at a time."""
        out = []
        for b in range(lrsr_lv3.shape[0]):
            best, arg = relevance(lrsr_lv3[b], refsr_lv3[b], self.chunk_elements)
            out.append((best[None], transfer(ref_lv3[b], arg, 1), transfer(ref_lv2[b], arg, 2),
                        transfer(ref_lv1[b], arg, 4)))
        return tuple(torch.stack(t) for t in zip(*out))

    def forward_official(self, lr, lrsr, ref, refsr):
        """The official ``TTSR.forward(lr, lrsr, ref, refsr)``: inputs and ``sr`` in [-1, 1].

        Returns (sr, S, T_lv3, T_lv2, T_lv1) like the official network.
        """
        lr, lrsr, ref, refsr = (t.contiguous(memory_format=torch.channels_last)  # faster convs on CPU
                                for t in (lr, lrsr, ref, refsr))
        lrsr_lv3 = self.LTE((lrsr.detach() + 1) / 2)[2]
        refsr_lv3 = self.LTE((refsr.detach() + 1) / 2)[2]
        ref_lv1, ref_lv2, ref_lv3 = self.LTE((ref.detach() + 1) / 2)
        S, T_lv3, T_lv2, T_lv1 = self.search_transfer(lrsr_lv3, refsr_lv3, ref_lv1, ref_lv2, ref_lv3)
        return self.MainNet(lr, S, T_lv3, T_lv2, T_lv1), S, T_lv3, T_lv2, T_lv1

    def official_inputs(self, lr: torch.Tensor, ref: torch.Tensor):
        """(lr, lrsr, ref, refsr) in [-1, 1] made from [0,1] RGB as the official test code does.

        Ref is cropped to a multiple of 4; LR_sr is the PIL bicubic x4 of the 8-bit LR and Ref_sr the
        PIL bicubic down-up (1/4 then x4) of the 8-bit Ref. LR and Ref themselves are used as given.
        """
        h, w = lr.shape[-2:]
        H, W = ref.shape[-2] // 4 * 4, ref.shape[-1] // 4 * 4
        if H == 0 or W == 0:
            raise ValueError(f"TTSR needs a reference of at least 4x4 pixels, got {tuple(ref.shape[-2:])}")
        ref = ref[..., :H, :W]
        lrsr = pil_bicubic_tensor(lr, (4 * h, 4 * w))
        refsr = pil_bicubic_tensor(pil_bicubic_tensor(ref, (H // 4, W // 4)), (H, W))
        return (lr * 2 - 1, lrsr * 2 - 1, ref * 2 - 1, refsr * 2 - 1)

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return ((self.forward_official(*self.official_inputs(lr, ref))[0] + 1) / 2).contiguous()


@register_model(SPEC, aliases={"ttsr_rec": "ttsr.rec"})
def ttsr(**kwargs) -> TTSR:
    return TTSR(**kwargs)
