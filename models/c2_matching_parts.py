"""Building blocks of C2-Matching (Jiang et al., CVPR 2021), kept apart from the model file.

Layer names, defaults and buffers follow the official code (yumingj/C2-Matching @6d60149e) so that
its checkpoints load unchanged: restoration net ``RestorationNet(64, 16, 8)``, the two-branch
contrastive extractor ``ContrasExtractorSep`` and the VGG19 slice of ``CorrespondenceGenerationArch``.
The official DCNv2 extension is replaced by ``torchvision.ops.deform_conv2d`` (same [y, x] offset
and mask layout); the dense patch matching is an exact reformulation of the official one that
costs 9x fewer multiply-adds and runs in chunks of bounded memory.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from core.resize import pil_bicubic_tensor

#: torchvision VGG ``features`` layer names up to relu3_1 (identical in VGG16 and VGG19).
VGG_NAMES = ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
             "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2", "conv3_1", "relu3_1")
_VGG_CONVS = {"conv1_1": (3, 64), "conv1_2": (64, 64), "conv2_1": (64, 128),
              "conv2_2": (128, 128), "conv3_1": (128, 256)}
#: torchvision ``features`` index of each conv above (VGG16 and VGG19 agree up to conv3_1).
VGG_TORCHVISION_INDEX = {"conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7, "conv3_1": 10}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------- VGG slices
def vgg_slice(last: str) -> nn.Sequential:
    """torchvision-VGG layers from conv1_1 to ``last``, named like the official OrderedDict."""
    layers = OrderedDict()
    for name in VGG_NAMES[: VGG_NAMES.index(last) + 1]:
        if name.startswith("conv"):
            layers[name] = nn.Conv2d(*_VGG_CONVS[name], 3, 1, 1)
        elif name.startswith("relu"):
            layers[name] = nn.ReLU(inplace=True)
        else:
            layers[name] = nn.MaxPool2d(2, 2)
    return nn.Sequential(layers)


class _ImageNetNorm(nn.Module):
    """Holds the ``mean``/``std`` buffers the official checkpoints carry; normalises [0,1] RGB."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ContrasExtractorLayer(_ImageNetNorm):
    """One branch of the contrastive extractor: VGG16 conv1_1 … conv3_1 (no final ReLU)."""

    def __init__(self):
        super().__init__()
        self.model = vgg_slice("conv3_1")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalise(x))


class ContrasExtractorSep(nn.Module):
    """Separate branches for the upsampled LR (image1) and the reference (image2)."""

    def __init__(self):
        super().__init__()
        self.feature_extraction_image1 = ContrasExtractorLayer()
        self.feature_extraction_image2 = ContrasExtractorLayer()

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"dense_features1": self.feature_extraction_image1(image1),
                "dense_features2": self.feature_extraction_image2(image2)}


class VGGFeatureExtractor(_ImageNetNorm):
    """Frozen ImageNet VGG19 up to relu3_1 returning relu1_1, relu2_1, relu3_1 (official keys)."""

    layer_names = ("relu1_1", "relu2_1", "relu3_1")

    def __init__(self):
        super().__init__()
        self.vgg_net = vgg_slice("relu3_1")
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.normalise(x)
        out = {}
        for name, layer in self.vgg_net.named_children():
            x = layer(x)
            if name in self.layer_names:
                out[name] = x.clone()  # the next ReLU is in place
        return out


def torchvision_vgg_to_official(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map torchvision ``vgg19`` keys (``features.N.*``) to the official ``vgg.vgg_net.convX_Y.*``.

    Classifier weights and deeper convs are dropped; ``mean``/``std`` are added as the official
    module registers them.
    """
    out = {"vgg.mean": torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1),
           "vgg.std": torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)}
    for name, idx in VGG_TORCHVISION_INDEX.items():
        for kind in ("weight", "bias"):
            out[f"vgg.vgg_net.{name}.{kind}"] = sd[f"features.{idx}.{kind}"]
    return out


def torchvision_vgg_to_extractor(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision ``vgg16`` (or vgg19) ``features.N.*`` up to conv3_1 -> both branches of
    ``ContrasExtractorSep``: the official stages 1-2 start each branch from ImageNet VGG16."""
    out = {}
    for branch in ("feature_extraction_image1", "feature_extraction_image2"):
        out[f"{branch}.mean"] = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        out[f"{branch}.std"] = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        for name, idx in VGG_TORCHVISION_INDEX.items():
            for kind in ("weight", "bias"):
                out[f"{branch}.model.{name}.{kind}"] = sd[f"features.{idx}.{kind}"].clone()
    return out


# ----------------------------------------------------------------------------- matching
def patch_match_index(feat_in: torch.Tensor, feat_ref: torch.Tensor, patch_size: int = 3,
                      chunk_elems: int = 1 << 25) -> torch.Tensor:
    """Index of the best reference patch for every input patch (stride 1), as the official code.

    Score = <input patch, reference patch> / (||reference patch|| + 1e-5) on (c,h,w) features
    that are already L2-normalised per pixel. The official code correlates with every reference
    patch as a conv kernel (c*k*k multiply-adds per pair); here one pixel-to-pixel correlation
    (c per pair) is shared by the k*k patch offsets. Input rows are correlated in bands of about
    ``chunk_elems`` scores (at least one row), each row once: its sums over the k x-shifts are
    kept for the next band's first output rows, which also need the last k-1 rows (recomputing
    them tripled the matching's multiply-adds at 1000² with k = 3). Returns (h-k+1, w-k+1) indices
    into the row-major (H-k+1)*(W-k+1) reference patch grid.
    """
    c, h, w = feat_in.shape
    _, H, W = feat_ref.shape
    k = patch_size
    ho, wo, Ho, Wo = h - k + 1, w - k + 1, H - k + 1, W - k + 1
    if min(ho, wo, Ho, Wo) < 1:
        raise ValueError(f"features {h}x{w} / {H}x{W} are smaller than the {k}x{k} patch")
    sq = feat_ref.pow(2).sum(0)[None, None]
    patch_norm = (F.avg_pool2d(sq, k, 1) * (k * k)).clamp_min(0).sqrt()[0, 0]
    inv_norm = 1.0 / (patch_norm + 1e-5)  # (Ho, Wo)
    ref_flat = feat_ref.reshape(c, H * W)
    rows = max(1, chunk_elems // (w * H * W))  # input rows correlated per band
    out = torch.empty(ho, wo, dtype=torch.long, device=feat_in.device)
    carry = None  # x-summed correlations of the last k-1 input rows
    for i0 in range(0, h, rows):
        i1 = min(h, i0 + rows)
        corr = (feat_in[:, i0:i1].reshape(c, -1).t() @ ref_flat).view(i1 - i0, w, H, W)
        # separable sum over the k*k diagonal shifts: first along x (per input row), then along y
        sx = corr[:, 0:wo, :, 0:Wo].clone()
        for b in range(1, k):
            sx += corr[:, b:b + wo, :, b:b + Wo]
        del corr
        if carry is not None:
            sx = torch.cat((carry, sx))
        r0 = i1 - sx.shape[0]  # the input row sx starts at = the first output row it completes
        n = sx.shape[0] - k + 1  # output rows r0 .. r0+n-1 have all their k input rows here
        if n > 0:
            score = sx[0:n, :, 0:Ho].clone()
            for a in range(1, k):
                score += sx[a:a + n, :, a:a + Ho]
            score *= inv_norm
            out[r0:r0 + n] = score.view(n, wo, Ho * Wo).argmax(-1)
            del score
        carry = sx[max(0, n):] if k > 1 else None
    return out


def index_to_flow(idx: torch.Tensor, ref_grid_w: int, pad: int) -> torch.Tensor:
    """(h', w') patch indices -> (h'+pad, w'+pad, 2) displacement [x, y], zero-padded bottom/right."""
    ho, wo = idx.shape
    ys = torch.arange(ho, device=idx.device).view(ho, 1)
    xs = torch.arange(wo, device=idx.device).view(1, wo)
    flow = torch.stack((idx % ref_grid_w - xs, idx // ref_grid_w - ys), dim=-1).float()
    return F.pad(flow, (0, 0, 0, pad, 0, pad))


def shifted_offsets(flow: torch.Tensor, step: int, k: int = 3) -> torch.Tensor:
    """Official ``tensor_shift`` stack: (B,h,w,2) -> (B,k*k,h,w,2), copy (i,j) moved by (i*step, j*step)."""
    b, h, w, _ = flow.shape
    out = flow.new_zeros(b, k * k, h, w, 2)
    for i in range(k):
        for j in range(k):
            si, sj = i * step, j * step
            out[:, i * k + j, si:, sj:] = flow[:, :h - si, :w - sj]
    return out


def upscale_flow(flow: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour x``factor`` of a (B,h,w,2) flow with the displacements scaled too."""
    return flow.repeat_interleave(factor, 1).repeat_interleave(factor, 2) * factor


# ----------------------------------------------------------------------------- restoration
def _layout(t: torch.Tensor) -> torch.memory_format:
    """channels_last if ``t`` is in it (convs on CPU run ~2x faster so), else contiguous."""
    cl = torch.channels_last
    return cl if t.dim() == 4 and t.is_contiguous(memory_format=cl) and not t.is_contiguous() else torch.contiguous_format


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv plus identity (BasicSR ``ResidualBlockNoBN``, res_scale 1)."""

    def __init__(self, nf: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


def res_blocks(n: int, nf: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlockNoBN(nf) for _ in range(n)])


class ContentExtractor(nn.Module):
    """LR content features: conv + LeakyReLU(0.1) + residual blocks."""

    def __init__(self, in_nc: int = 3, nf: int = 64, n_blocks: int = 16):
        super().__init__()
        self.conv_first = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.body = res_blocks(n_blocks, nf)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.lrelu(self.conv_first(x)))


def flow_offsets(pre_offset: torch.Tensor) -> torch.Tensor:
    """(B, k*k, h, w, 2) [x, y] matched flow -> (B, 2*k*k, h, w) interleaved [y0, x0, y1, x1, ...],
    the offset layout of one DCNv2 / torchvision deformable group."""
    b, kk, h, w, _ = pre_offset.shape
    return pre_offset.flip(-1).permute(0, 1, 4, 2, 3).reshape(b, 2 * kk, h, w)


def offset_and_mask(offset_mask: torch.Tensor, pre_offset: torch.Tensor, groups: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The DCN offsets and mask of C2-Matching's dynamic aggregation: the learnt offsets (the first
    two thirds of ``offset_mask``) plus the matched flow ``pre_offset`` ((B, k*k, h, w, 2) in [x, y],
    the same for every group), and the sigmoid of the last third. Computed in place on a fresh
    tensor, the flow broadcast over the groups (no per-group copies: these are ~0.6 GB at 1000²)."""
    n = offset_mask.shape[1] // 3
    b, _, h, w = offset_mask.shape
    offset = offset_mask[:, : 2 * n].clone()
    offset.view(b, groups, -1, h, w).add_(flow_offsets(pre_offset).unsqueeze(1))
    return offset, torch.sigmoid(offset_mask[:, 2 * n:])


def deform_conv2d_by_group(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                           bias: torch.Tensor | None, mask: torch.Tensor, groups: int) -> torch.Tensor:
    """``deform_conv2d(x, offset, weight, bias, padding=k//2, mask=mask)`` with ``groups`` offset
    groups, run one offset group at a time and summed.

    torchvision's CPU kernel first samples a (C*k*k, H*W) column buffer (2.3 GB for 64 channels at
    1000x1000, the peak of the C2-Matching family's forwards at WR-SR size); a group's call samples
    its C/groups channels only. The sampling is the same kernel's; the result differs from the
    single call by float summation order only. On CPU, when autograd needs a gradient (training),
    :func:`deform_conv2d_sampled` runs instead: torchvision's CPU backward is a scalar loop (most of
    a C2-family training step on CPU), the sampled form's is grid_sample's and a matmul's.
    """
    if x.device.type == "cpu" and torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (x, offset, weight, bias, mask)):
        return deform_conv2d_sampled(x, offset, weight, bias, mask, groups)
    c = x.shape[1]
    k = weight.shape[-1]
    cg, og, mg = c // groups, offset.shape[1] // groups, mask.shape[1] // groups
    pad = (k // 2, k // 2)
    out = None
    for g in range(groups):
        part = deform_conv2d(x[:, g * cg:(g + 1) * cg], offset[:, g * og:(g + 1) * og],
                             weight[:, g * cg:(g + 1) * cg], padding=pad, mask=mask[:, g * mg:(g + 1) * mg])
        out = part if out is None else out.add_(part)
    if bias is not None:
        out += bias.view(1, -1, 1, 1)
    return out


def deform_conv2d_sampled(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                          bias: torch.Tensor | None, mask: torch.Tensor, groups: int) -> torch.Tensor:
    """The same modulated deformable conv (odd k x k kernel, stride 1, padding k//2, ``groups``
    offset groups with torchvision's layout: per group and kernel position a (dy, dx) pair) built
    from differentiable ops: each group's input sampled by ``F.grid_sample`` (bilinear, zeros outside:
    torchvision's interpolation) at the k*k displaced positions, times the mask, then one matmul with
    the weight. Equal to torchvision's values and gradients to float32 rounding (the sampling
    positions go through grid_sample's normalised coordinates); its column tensor is the full
    (C*k*k, H*W) one, so it is meant for training crops, not for whole test images."""
    b, c, h, w = x.shape
    k = weight.shape[-1]
    kk, cg = k * k, c // groups
    off = offset.view(b, groups, kk, 2, h, w)
    tap = torch.arange(kk, device=x.device)
    ky = (tap // k - k // 2).to(x.dtype).view(kk, 1, 1)
    kx = (tap % k - k // 2).to(x.dtype).view(kk, 1, 1)
    py = torch.arange(h, dtype=x.dtype, device=x.device).view(h, 1) + ky + off[:, :, :, 0]
    px = torch.arange(w, dtype=x.dtype, device=x.device).view(1, w) + kx + off[:, :, :, 1]
    # pixel p -> (2p + 1) / size - 1: grid_sample's align_corners=False maps it back to p
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), -1).view(b * groups, kk * h, w, 2)
    cols = F.grid_sample(x.reshape(b * groups, cg, h, w), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)  # (b*groups, cg, kk*h, w)
    cols = cols.view(b, groups, cg, kk, h * w) * mask.view(b, groups, 1, kk, h * w)
    out = torch.matmul(weight.reshape(weight.shape[0], c * kk), cols.view(b, c * kk, h * w)).view(b, -1, h, w)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class DynamicAggregation(nn.Module):
    """Modulated deformable 3x3 conv whose offsets are a learnt residual on the matched flow.

    Same parameters as the official ``DCN_sep_pre_multi_offset``: ``weight``, ``bias`` and
    ``conv_offset_mask`` (3*groups*9 channels: y/x offsets chunk 1-2, mask logits chunk 3).
    """

    def __init__(self, channels: int, groups: int, kernel_size: int = 3):
        super().__init__()
        self.groups = groups
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(channels, channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.conv_offset_mask = nn.Conv2d(channels, 3 * groups * kernel_size ** 2, kernel_size, 1,
                                          kernel_size // 2)
        bound = 1.0 / math.sqrt(channels * kernel_size ** 2)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, ref_feat: torch.Tensor, cond: torch.Tensor, pre_offset: torch.Tensor) -> torch.Tensor:
        """``pre_offset``: (B, k*k, h, w, 2) in [x, y] order, shared by every deformable group."""
        offset, mask = offset_and_mask(self.conv_offset_mask(cond), pre_offset, self.groups)
        out = deform_conv2d_by_group(ref_feat, offset, self.weight, self.bias, mask, self.groups)
        return out.contiguous(memory_format=_layout(cond))


class DynamicAggregationRestoration(nn.Module):
    """Three scales (relu3_1 at x1, relu2_1 at x2, relu1_1 at x4): aggregate, fuse, upsample."""

    scales = (("small", "relu3_1", 256), ("medium", "relu2_1", 128), ("large", "relu1_1", 64))

    def __init__(self, ngf: int = 64, n_blocks: int = 16, groups: int = 8):
        super().__init__()
        for prefix, _, ch in self.scales:
            setattr(self, f"{prefix}_offset_conv1", nn.Conv2d(ngf + ch, ch, 3, 1, 1))
            setattr(self, f"{prefix}_offset_conv2", nn.Conv2d(ch, ch, 3, 1, 1))
            setattr(self, f"{prefix}_dyn_agg", DynamicAggregation(ch, groups))
            setattr(self, f"head_{prefix}", nn.Sequential(nn.Conv2d(ngf + ch, ngf, 3, 1, 1),
                                                          nn.LeakyReLU(0.1, True)))
            setattr(self, f"body_{prefix}", res_blocks(n_blocks, ngf))
        for prefix in ("small", "medium"):
            setattr(self, f"tail_{prefix}", nn.Sequential(nn.Conv2d(ngf, ngf * 4, 3, 1, 1),
                                                          nn.PixelShuffle(2), nn.LeakyReLU(0.1, True)))
        self.tail_large = nn.Sequential(nn.Conv2d(ngf, ngf // 2, 3, 1, 1), nn.LeakyReLU(0.1, True),
                                        nn.Conv2d(ngf // 2, 3, 3, 1, 1))
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor, pre_offset: dict[str, torch.Tensor],
                img_ref_feat: dict[str, torch.Tensor]) -> torch.Tensor:
        for prefix, layer, _ in self.scales:
            ref = img_ref_feat[layer]
            cond = self.lrelu(getattr(self, f"{prefix}_offset_conv1")(torch.cat([x, ref], 1)))
            cond = self.lrelu(getattr(self, f"{prefix}_offset_conv2")(cond))
            swapped = self.lrelu(getattr(self, f"{prefix}_dyn_agg")(ref, cond, pre_offset[layer]))
            h = getattr(self, f"head_{prefix}")(torch.cat([x, swapped], 1))
            h = getattr(self, f"body_{prefix}")(h) + x
            x = getattr(self, f"tail_{prefix}")(h)
        return x


def run_on_common_canvas(official, lr: torch.Tensor, ref: torch.Tensor, multiple: int = 1) -> torch.Tensor:
    """The C2-Matching family's test-time sizes: zero-pad the LR and the reference (bottom/right) to
    one HR-sized canvas with sides a multiple of ``multiple``, make the bicubic-upsampled LR as the
    official loaders do (PIL), run ``official(lr, img_in_up, ref)`` and crop back to 4x the LR, clamped.
    (The official code pads the HR before downsampling; padding the LR differs only at that border.)"""
    h, w = lr.shape[-2:]
    H = -(-max(4 * h, ref.shape[-2]) // multiple) * multiple
    W = -(-max(4 * w, ref.shape[-1]) // multiple) * multiple
    lr_p = F.pad(lr, (0, W // 4 - w, 0, H // 4 - h))
    ref_p = F.pad(ref, (0, W - ref.shape[-1], 0, H - ref.shape[-2]))
    sr = official(lr_p, pil_bicubic_tensor(lr_p, (H, W)), ref_p)
    return sr[..., : 4 * h, : 4 * w].clamp(0, 1)


def init_restoration(net: nn.Module, zero_offset_bias: bool = False) -> None:
    """The official random init of C2-Matching-style restoration nets (``srntt_init_weights``):
    N(0, 0.02) on every Conv2d with zero biases, then the DCN offset/mask convs zeroed."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
    for m in net.modules():
        if isinstance(m, DynamicAggregation):
            nn.init.zeros_(m.conv_offset_mask.weight)
            if zero_offset_bias:
                nn.init.zeros_(m.conv_offset_mask.bias)


class RestorationNet(nn.Module):
    """C2-Matching restoration network: bilinear x4 base plus the aggregated residual."""

    def __init__(self, ngf: int = 64, n_blocks: int = 16, groups: int = 8):
        super().__init__()
        self.content_extractor = ContentExtractor(3, ngf, n_blocks)
        self.dyn_agg_restore = DynamicAggregationRestoration(ngf, n_blocks, groups)
        init_restoration(self)  # official init: zero offset/mask weights, their bias left as drawn

    def forward(self, lr: torch.Tensor, pre_offset: dict[str, torch.Tensor],
                img_ref_feat: dict[str, torch.Tensor]) -> torch.Tensor:
        base = F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)
        return self.dyn_agg_restore(self.content_extractor(lr), pre_offset, img_ref_feat) + base


