"""SSMTF (DRefSR paper, IJCV 2025): C2-Matching's correspondence with Mamba (SS2D) restoration, x4.

Three sub-networks, as in the official test (``RefRestorationModel.test``): ``net_extractor``
(C2-Matching's contrastive VGG features of the upsampled LR and of the reference), ``net_map``
(patch matching -> per-scale offsets, plus ImageNet VGG19 features of the reference) and
``net_g``, a C2-Matching ``RestorationNet`` whose residual-block bodies are replaced by
``MamabaBlock``s (3 residual groups x 6 VSS blocks: SS2D four-direction selective scan + channel-
attention conv block). Layers and state-dict keys follow edbca/SSMTF @432a7494 (including its
spellings ``mamaba`` and ``self_attention``) so its checkpoints load unchanged. The extractor, the
matching and the VGG19 slice are C2-Matching's and are imported from :mod:`models.c2_matching_parts`.
The selective scan is :func:`models.selective_scan.selective_scan` (mamba-ssm's CUDA kernel when
importable on CUDA, else a chunked pure-PyTorch scan); ``model.scan_backends`` says which ran.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d


from . import selective_scan as scan_ops
from .base import CheckpointFile, MemoryCost, ModelSpec, RefSRModel, WeightTag
from .c2_matching import C2Matching, _MapNet
from .c2_matching_parts import (ContentExtractor, ContrasExtractorSep, deform_conv2d_by_group, offset_and_mask,
                                run_on_common_canvas, torchvision_vgg_to_official)
from .c2_matching_parts import DynamicAggregationRestoration as C2DynamicAggregationRestoration
from .registry import register_model

_BAIDU = "https://pan.baidu.com/s/1GUymA7t3eD1TqDVLUxNLZQ?pwd=f5cf"  # README "Pretrained Models"
_VGG19 = CheckpointFile("vgg19-dcbb9e9d.pth", role="vgg19",
                        url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth")
_EXTRACTOR = CheckpointFile("net_student_latest_DRef.pth", role="extractor", url=_BAIDU)

TAGS = (
    WeightTag("", (CheckpointFile("net_g_445000.pth", role="net_g", url=_BAIDU), _EXTRACTOR, _VGG19),
              description="reconstruction-loss (PSNR) model trained on DRefSR: net_g_445000.pth "
                          "(options/test/test_SSMTF_mse.yml, experiments/DRefSR/mse/)"),
    WeightTag("gan", (CheckpointFile("net_g_235000_gan.pth", role="net_g", url=_BAIDU), _EXTRACTOR, _VGG19),
              description="GAN-loss model: net_g_235000_gan.pth (options/test/test_SSMTF_gan.yml, loaded "
                          "from experiments/CUFED/)"),
)

_NOTES = (
    "Official test (RefCUFEDDataset, phase test): HR and reference mod-cropped top-left to multiples of "
    "16 (scale*4; C2-Matching uses 4), zero-padded bottom/right to a common size if they differ; LR = PIL "
    "bicubic /4 of the uint8 HR, img_in_up = PIL bicubic x4 of the uint8 LR (matching only). The dataset "
    "also builds x2/x4 cv2-bicubic input/reference pyramids (with (h, w) passed as mmcv's (w, h)) that "
    "the network never uses. forward() crops the reference to multiples of 16 and pads as C2-Matching "
    "(LR padded instead of HR: differs only next to the padded border); the LR itself needs no "
    "multiple (the official protocol only ever sees LR multiples of 4). Both tags use the same "
    "extractor net_student_latest_DRef.pth; the VGG19 of net_map is torchvision's ImageNet file "
    "(vgg19(pretrained=True) in the official code; no SSMTF file holds it). All three SSMTF files are "
    "on Baidu pan only (one folder, password f5cf). RestorationNet keeps n_blocks for the content "
    "extractor (16 residual blocks); each body is MamabaBlock(64, 3 groups, 6 VSS blocks), d_state 16, "
    "expand 2 (d_inner 128), dt_rank 4, depthwise conv 3x3, LayerNorm eps 1e-5, CAB 64->21->64 with "
    "channel attention 64->2->64 (squeeze 30); MamabaBlock.pos_drop is Dropout(0.1) (eval: identity). "
    "SS2D runs on the LR grid (body_small, L = h*w per direction), at 2x (body_medium) and at 4x "
    "(body_large, L = 16*h*w): at LR 128x128 the scans are 4 directions x 128 channels x 16 states over "
    "L = 16,384 / 65,536 / 262,144, 18 VSS blocks each. The official DCN is already torchvision's "
    "DeformConv2d (keys *_dyn_agg.deform_conv.* and *_dyn_agg.conv_offset_mask.*). The official "
    "selective scan is mamba-ssm's CUDA kernel; here the chunked pure-PyTorch scan unless mamba-ssm "
    "is importable and the model is on CUDA (model.scan_backends records which ran); its float32 "
    "results differ from the per-step reference by ~1e-7 relative (net_g parity: ~2e-5 abs on "
    "outputs of std 3.4). Parameter counts: net_g 10,016,293, extractor 1,110,656, VGG19 slice "
    "555,328. Paper figures for params/FLOPs/runtime: none in the repository or the stored "
    "abstract and references.")

SPEC = ModelSpec(
    name="ssmtf",
    scale=4,
    lr_multiple=1,
    ref_multiple=16,  # the official test mod-crops the reference (and HR) to multiples of 16
    # from LR 32x32 / Ref 128x128 (506 MiB) and a lower bound at 64x64 / 256x256 (>= 1,756 MiB, killed at
    # 15 min), all growth put on the reference: scripts/memory_zoo.py, docs/reliability.md
    max_ref_side=512,
    memory=MemoryCost(base_mib=89, per_ref_px=26700),
    num_refs=1,
    paper="Multi-Scale Texture Fusion for Reference-based Image Super-Resolution: New Dataset and "
          "Solution (DRefSR dataset, SSMTF). IJCV 2025",
    official_repo="https://github.com/edbca/SSMTF",
    official_commit="432a7494",
    licence="no licence file in the repository (all rights reserved by default)",
    test_kwargs={"ngf": 32, "n_blocks": 1, "groups": 2, "mamba_groups": 1, "mamba_depth": 1,
                 "d_state": 4},
    tags=TAGS,
    notes=_NOTES,
)


# ----------------------------------------------------------------------------- SS2D / VSS blocks
class SS2D(nn.Module):
    """VMamba's 2D selective scan: four scan orders (rows, columns, and both reversed) over H*W.

    Parameters as the official module after its constructor (stacked per direction k = 0..3):
    ``x_proj_weight`` (4, dt_rank + 2N, d_inner), ``dt_projs_weight`` (4, d_inner, dt_rank),
    ``dt_projs_bias`` (4, d_inner), ``A_logs`` (4*d_inner, N), ``Ds`` (4*d_inner).
    """

    K = 4

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 3, expand: float = 2.0,
                 scan_backend: str = "auto"):
        super().__init__()
        self.d_model, self.d_state = d_model, d_state
        self.d_inner = d_inner = int(expand * d_model)
        self.dt_rank = dt_rank = math.ceil(d_model / 16)
        self.scan_backend = scan_backend
        self.last_backend: str | None = None
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2, groups=d_inner)
        self.x_proj_weight = nn.Parameter(torch.empty(self.K, dt_rank + 2 * d_state, d_inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(self.K, d_inner, dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(self.K, d_inner))
        self.A_logs = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32))
                                   .repeat(self.K * d_inner, 1))
        self.Ds = nn.Parameter(torch.ones(self.K * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        # Mamba's initialisation: dt = softplus(bias) log-uniform in [1e-3, 0.1]
        nn.init.uniform_(self.x_proj_weight, -d_inner ** -0.5, d_inner ** -0.5)
        nn.init.uniform_(self.dt_projs_weight, -dt_rank ** -0.5, dt_rank ** -0.5)
        with torch.no_grad():
            dt = torch.exp(torch.rand(self.K, d_inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
            self.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def _scan(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d_inner, H, W) -> sum of the four directional scans, (B, d_inner, L)."""
        b, d, h, w = x.shape
        L = h * w
        rows = x.reshape(b, d, L)
        cols = x.transpose(2, 3).reshape(b, d, L)
        fwd = torch.stack((rows, cols), 1)
        xs = torch.cat((fwd, fwd.flip(-1)), 1)  # (B, 4, d, L)
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        As = -torch.exp(self.A_logs.float())
        backend = self.scan_backend
        out = scan_ops.selective_scan(xs.float().reshape(b, -1, L), dts.float().reshape(b, -1, L), As,
                             Bs.float().contiguous(), Cs.float().contiguous(), self.Ds.float(),
                             z=None, delta_bias=self.dt_projs_bias.float().reshape(-1),
                             delta_softplus=True, backend=backend).view(b, self.K, d, L)
        self.last_backend = scan_ops.LAST_BACKEND
        rev = out[:, 2:4].flip(-1)
        by_cols = out[:, 1].view(b, d, w, h).transpose(2, 3).reshape(b, d, L)
        rev_by_cols = rev[:, 1].view(b, d, w, h).transpose(2, 3).reshape(b, d, L)
        return out[:, 0] + rev[:, 0] + by_cols + rev_by_cols

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        b, h, w, _ = x.shape
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = F.silu(self.conv2d(x.permute(0, 3, 1, 2).contiguous()))
        y = self._scan(x).transpose(1, 2).reshape(b, h, w, -1)
        return self.out_proj(self.out_norm(y) * F.silu(z))


class ChannelAttention(nn.Module):
    def __init__(self, nf: int, squeeze: int):
        super().__init__()
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(nf, nf // squeeze, 1),
                                       nn.ReLU(inplace=True), nn.Conv2d(nf // squeeze, nf, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class CAB(nn.Module):
    """conv 3x3 (nf -> nf/3), GELU, conv 3x3 back, channel attention (squeeze 30)."""

    def __init__(self, nf: int, compress: int = 3, squeeze: int = 30):
        super().__init__()
        self.cab = nn.Sequential(nn.Conv2d(nf, nf // compress, 3, 1, 1), nn.GELU(),
                                 nn.Conv2d(nf // compress, nf, 3, 1, 1), ChannelAttention(nf, squeeze))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cab(x)


class VSSBlock(nn.Module):
    """x*s1 + SS2D(LN(x)), then x*s2 + CAB(LN(x)) on (B, L, C) tokens of an (H, W) grid."""

    def __init__(self, dim: int, d_state: int = 16, expand: float = 2.0, scan_backend: str = "auto"):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = SS2D(dim, d_state, expand=expand, scan_backend=scan_backend)
        self.skip_scale = nn.Parameter(torch.ones(dim))
        self.conv_blk = CAB(dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.skip_scale2 = nn.Parameter(torch.ones(dim))

    def forward(self, tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        b, L, c = tokens.shape
        x = tokens.view(b, *size, c)
        x = x * self.skip_scale + self.self_attention(self.ln_1(x))
        conv = self.conv_blk(self.ln_2(x).permute(0, 3, 1, 2).contiguous()).permute(0, 2, 3, 1)
        return (x * self.skip_scale2 + conv).reshape(b, L, c)


class _Blocks(nn.Module):
    """Holds ``blocks`` (the official BasicLayer)."""

    def __init__(self, dim: int, depth: int, d_state: int, expand: float, scan_backend: str):
        super().__init__()
        self.blocks = nn.ModuleList(VSSBlock(dim, d_state, expand, scan_backend) for _ in range(depth))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, size)
        return x


class ResidualGroup(nn.Module):
    """VSS blocks, a 3x3 conv on the (H, W) grid, plus the group's input."""

    def __init__(self, dim: int, depth: int, d_state: int = 16, expand: float = 2.0,
                 scan_backend: str = "auto"):
        super().__init__()
        self.residual_group = _Blocks(dim, depth, d_state, expand, scan_backend)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y = self.residual_group(x, size)
        y = self.conv(y.transpose(1, 2).reshape(y.shape[0], -1, *size))
        return y.flatten(2).transpose(1, 2) + x


class _Norm(nn.Module):
    """Holds ``norm`` (the official PatchEmbed with a LayerNorm)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)


class MamabaBlock(nn.Module):
    """(B, C, H, W) -> tokens, LayerNorm, Dropout(0.1), residual groups, LayerNorm -> (B, C, H, W)."""

    def __init__(self, dim: int, layers: int = 3, depth: int = 6, d_state: int = 16, expand: float = 2.0,
                 scan_backend: str = "auto"):
        super().__init__()
        self.patch_embed = _Norm(dim)
        self.pos_drop = nn.Dropout(0.1)
        self.mamaba = nn.ModuleList(ResidualGroup(dim, depth, d_state, expand, scan_backend)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.pos_drop(self.patch_embed.norm(x.flatten(2).transpose(1, 2)))
        for group in self.mamaba:
            t = group(t, (h, w))
        return self.norm(t).transpose(1, 2).reshape(b, c, h, w)


# ----------------------------------------------------------------------------- restoration
class DynAgg(nn.Module):
    """Official DCN_sep_pre_multi_offset: torchvision DeformConv2d with learnt offsets/mask from
    ``cond`` added to the matched flow (pre_offset (B, 9, h, w, 2) in [x, y], same for all groups)."""

    def __init__(self, channels: int, groups: int, kernel_size: int = 3):
        super().__init__()
        self.groups = groups
        self.conv_offset_mask = nn.Conv2d(channels, 3 * groups * kernel_size ** 2, kernel_size, 1,
                                          kernel_size // 2)
        self.deform_conv = DeformConv2d(channels, channels, kernel_size, 1, kernel_size // 2)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, ref_feat: torch.Tensor, cond: torch.Tensor, pre_offset: torch.Tensor) -> torch.Tensor:
        offset, mask = offset_and_mask(self.conv_offset_mask(cond), pre_offset, self.groups)
        conv = self.deform_conv
        return deform_conv2d_by_group(ref_feat, offset, conv.weight, conv.bias, mask, self.groups)


class DynamicAggregationRestoration(C2DynamicAggregationRestoration):
    """Three scales (relu3_1 at x1, relu2_1 at x2, relu1_1 at x4): aggregate, fuse with Mamba, upsample."""

    def __init__(self, ngf: int = 64, groups: int = 8, mamba_groups: int = 3, mamba_depth: int = 6,
                 d_state: int = 16, scan_backend: str = "auto"):
        nn.Module.__init__(self)  # C2's layers are replaced; its forward over the scales is kept
        for prefix, _, ch in self.scales:
            setattr(self, f"{prefix}_offset_conv1", nn.Conv2d(ngf + ch, ch, 3, 1, 1))
            setattr(self, f"{prefix}_offset_conv2", nn.Conv2d(ch, ch, 3, 1, 1))
            setattr(self, f"{prefix}_dyn_agg", DynAgg(ch, groups))
            setattr(self, f"head_{prefix}", nn.Sequential(nn.Conv2d(ngf + ch, ngf, 3, 1, 1),
                                                          nn.LeakyReLU(0.1, True)))
            setattr(self, f"body_{prefix}", MamabaBlock(ngf, mamba_groups, mamba_depth, d_state,
                                                        scan_backend=scan_backend))
            if prefix == "large":  # (registration order = the official key order)
                tail = nn.Sequential(nn.Conv2d(ngf, ngf // 2, 3, 1, 1), nn.LeakyReLU(0.1, True),
                                     nn.Conv2d(ngf // 2, 3, 3, 1, 1))
            else:
                tail = nn.Sequential(nn.Conv2d(ngf, ngf * 4, 3, 1, 1), nn.PixelShuffle(2),
                                     nn.LeakyReLU(0.1, True))
            setattr(self, f"tail_{prefix}", tail)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)


class RestorationNet(nn.Module):
    """SSMTF's net_g: bilinear x4 of the LR plus the aggregated residual."""

    def __init__(self, ngf: int = 64, n_blocks: int = 16, groups: int = 8, mamba_groups: int = 3,
                 mamba_depth: int = 6, d_state: int = 16, scan_backend: str = "auto"):
        super().__init__()
        self.content_extractor = ContentExtractor(3, ngf, n_blocks)
        self.dyn_agg_restore = DynamicAggregationRestoration(ngf, groups, mamba_groups, mamba_depth,
                                                             d_state, scan_backend)
        # official srntt_init_weights: N(0, 0.02) weights and zero biases on every module whose class name
        # has 'Conv' or 'Linear': the convs, torchvision's DeformConv2d and SS2D's in/out projections (its
        # x_proj / dt_projs are plain parameters by then and keep Mamba's init)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, DeformConv2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, DynAgg):
                nn.init.zeros_(m.conv_offset_mask.weight)

    def forward(self, lr: torch.Tensor, pre_offset: dict[str, torch.Tensor],
                img_ref_feat: dict[str, torch.Tensor]) -> torch.Tensor:
        base = F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)
        return self.dyn_agg_restore(self.content_extractor(lr), pre_offset, img_ref_feat) + base


# ----------------------------------------------------------------------------- the model
class SSMTF(RefSRModel):
    """forward(lr, ref) -> sr, RGB in [0,1]; the official preprocessing happens inside."""

    spec = SPEC

    def __init__(self, ngf: int = 64, n_blocks: int = 16, groups: int = 8, mamba_groups: int = 3,
                 mamba_depth: int = 6, d_state: int = 16, patch_size: int = 3,
                 match_chunk_elems: int = 1 << 25, scan_backend: str = "auto"):
        super().__init__()
        self.net_g = RestorationNet(ngf, n_blocks, groups, mamba_groups, mamba_depth, d_state, scan_backend)
        self.net_extractor = ContrasExtractorSep()
        self.net_map = _MapNet()
        self.patch_size = patch_size
        self.match_chunk_elems = match_chunk_elems

    @property
    def scan_backends(self) -> set[str]:
        """Selective-scan implementations the last forward used ("chunked", "mamba_ssm", "ref")."""
        return {m.last_backend for m in self.modules() if isinstance(m, SS2D) and m.last_backend}

    # -- the official steps (C2-Matching's net_extractor and net_map, unchanged in SSMTF) ------------
    def extract_features(self, img_in_up: torch.Tensor, img_ref: torch.Tensor) -> dict[str, torch.Tensor]:
        """Contrastive features of the bicubic-upsampled LR and of the reference (net_extractor)."""
        return self.net_extractor(img_in_up, img_ref)

    correspondence = C2Matching.correspondence  # official net_map: (pre_offset, VGG19 ref features)

    def restore(self, img_in_lq: torch.Tensor, pre_offset: dict[str, torch.Tensor],
                img_ref_feat: dict[str, torch.Tensor]) -> torch.Tensor:
        """Official net_g output (not clamped)."""
        return self.net_g(img_in_lq, pre_offset, img_ref_feat)

    def forward_official(self, img_in_lq: torch.Tensor, img_in_up: torch.Tensor,
                         img_ref: torch.Tensor) -> torch.Tensor:
        """The official test step on the official inputs; unclamped."""
        pre_offset, ref_feat = self.correspondence(self.extract_features(img_in_up, img_ref), img_ref)
        return self.restore(img_in_lq, pre_offset, ref_feat)

    # -- our interface ----------------------------------------------------------------------------
    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        m = self.spec.ref_multiple
        ref = ref[..., : ref.shape[-2] // m * m, : ref.shape[-1] // m * m]
        if ref.shape[-2] == 0 or ref.shape[-1] == 0:
            raise ValueError(f"ssmtf: reference smaller than {m}x{m} after the official mod-crop")
        return run_on_common_canvas(self.forward_official, lr, ref)

    # -- official checkpoints ---------------------------------------------------------------------
    def checkpoint_modules(self) -> dict[str, nn.Module]:
        return {"net_g": self.net_g, "extractor": self.net_extractor, "vgg19": self.net_map}

    def checkpoint_filter(self, role: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """vgg19 accepts torchvision's ImageNet file (``features.N.*``) or the module's own keys."""
        if role == "vgg19" and "features.0.weight" in state_dict:
            return torchvision_vgg_to_official(state_dict)
        return state_dict


@register_model(SPEC)
def ssmtf(**kwargs) -> SSMTF:
    return SSMTF(**kwargs)
