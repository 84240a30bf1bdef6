"""Building blocks of FRFSR (Yi-Yang355/FRFSR @72122649, a drop-in over C2-Matching).

- :func:`ddf`: the decoupled dynamic filter op (Zhou et al., CVPR 2021) in plain PyTorch. The
  official op is a CUDA-only extension; this version reads the k*k taps of the zero-padded input
  through ``Tensor.unfold`` (a strided view, no copy) and accumulates one tap at a time, so its
  memory is that of the output, not the k*k times larger unfolded matrix.
- :class:`DDFPack` / :class:`ResidualDDFBlock`: FRFSR's DDF module (FilterNorm removed from both
  filter branches, unlike theFoxofSky/ddfnet) and the residual pair of DDFs.
- :class:`ESA` and :class:`ResidualBlockESA`: FRFSR's residual block (conv-ReLU-conv, then the
  enhanced spatial attention of RFANet/RFDN, then + identity); official class ``ResidualBlockNoBN``.
- :class:`RRDBNet`: the ESRGAN trunk used as the single-image branch (SIFE); BasicSR key names,
  forward returns the LR-size trunk features (the upsampling layers exist but are unused).
- :class:`FRFSRRestorationNet`: official ``SwinUnetv3RestorationNet(64, 16, 8)`` (no Swin inside):
  a three-scale U-Net at HR size with C2-Matching's deformable aggregation at every scale.

Key names follow the official modules so that their state dicts load unchanged. The deformable
aggregation is C2-Matching's :class:`models.c2_matching_parts.DynamicAggregation`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .c2_matching_parts import DynamicAggregation, init_restoration


# ----------------------------------------------------------------------------- DDF
def ddf(x: torch.Tensor, channel_filter: torch.Tensor, spatial_filter: torch.Tensor,
        kernel_size: int = 3, dilation: int = 1, stride: int = 1, kernel_combine: str = "mul") -> torch.Tensor:
    """Decoupled dynamic filter.

    ``out[b,c,y,x] = sum_{i,j} x[b,c, y*s+(i-r)*d, x*s+(j-r)*d] * F[b,c,i,j,y,x]`` with
    ``F = sf[b,i*k+j,y,x] * cf[b,c,i,j]`` ('mul') or ``sf + cf`` ('add'), ``r = (k-1)//2``, zero
    padding, output ``(h//s, w//s)``. ``x``: (B,C,h,w); ``channel_filter``: (B,C,k,k);
    ``spatial_filter``: (B,k*k,h//s,w//s).
    """
    b, c, h, w = x.shape
    k, d, s = kernel_size, dilation, stride
    if k < 1 or k % 2 == 0 or d < 1 or s < 1:
        raise ValueError(f"ddf: odd kernel_size >= 1, dilation >= 1 and stride >= 1 needed, got {k}, {d}, {s}")
    if kernel_combine not in ("mul", "add"):
        raise ValueError(f"ddf: kernel_combine must be 'mul' or 'add', got {kernel_combine!r}")
    ho, wo = h // s, w // s
    if tuple(channel_filter.shape) != (b, c, k, k):
        raise ValueError(f"ddf: channel_filter {tuple(channel_filter.shape)} != {(b, c, k, k)}")
    if tuple(spatial_filter.shape) != (b, k * k, ho, wo):
        raise ValueError(f"ddf: spatial_filter {tuple(spatial_filter.shape)} != {(b, k * k, ho, wo)}")
    pad = (k - 1) // 2 * d
    span = (k - 1) * d + 1
    # windows[b, c, y, x, p, q] = padded[b, c, y*s + p, x*s + q]: a view, nothing is copied
    windows = F.pad(x, (pad, pad, pad, pad)).unfold(2, span, s).unfold(3, span, s)[:, :, :ho, :wo]
    out = None
    for i in range(k):
        for j in range(k):
            tap = windows[..., i * d, j * d]  # (b, c, ho, wo)
            sf = spatial_filter[:, i * k + j].unsqueeze(1)  # (b, 1, ho, wo)
            cf = channel_filter[:, :, i, j, None, None]  # (b, c, 1, 1)
            term = (tap * sf).mul_(cf) if kernel_combine == "mul" else tap * (sf + cf)
            out = term if out is None else out.add_(term)  # in place: out is a fresh tensor
    return out


class DDFPack(nn.Module):
    """Spatial filter (1x1 conv -> head*k^2 maps) and channel filter (SE-style pool-conv-ReLU-conv
    -> C*k^2 values) applied by :func:`ddf`. FRFSR removed ddfnet's FilterNorm from both branches,
    so the filters are not normalised (no ``std`` parameters in the checkpoint)."""

    def __init__(self, in_channels: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1,
                 head: int = 1, se_ratio: float = 0.2, kernel_combine: str = "mul"):
        super().__init__()
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.head, self.kernel_combine = head, kernel_combine
        self.spatial_branch = nn.Sequential(nn.Conv2d(in_channels, head * kernel_size ** 2, 1, stride=stride))
        mid = int(in_channels * se_ratio)
        self.channel_branch = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Conv2d(in_channels, mid, 1),
                                            nn.ReLU(True), nn.Conv2d(mid, in_channels * kernel_size ** 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g, k, s = self.head, self.kernel_size, self.stride
        cf = self.channel_branch(x).reshape(b * g, c // g, k, k)
        sf = self.spatial_branch(x).reshape(b * g, k * k, h // s, w // s)
        out = ddf(x.reshape(b * g, c // g, h, w), cf, sf, k, self.dilation, s, self.kernel_combine)
        return out.reshape(b, c, h // s, w // s)


class ResidualDDFBlock(nn.Module):
    """x + DDF(ReLU(DDF(x))), 3x3 'mul' filters, se_ratio 0.2."""

    def __init__(self, nf: int = 64, dilation: int = 1, se_ratio: float = 0.2):
        super().__init__()
        self.conv1 = DDFPack(nf, 3, 1, dilation, se_ratio=se_ratio, kernel_combine="mul")
        self.conv2 = DDFPack(nf, 3, 1, dilation, se_ratio=se_ratio, kernel_combine="mul")
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


# ----------------------------------------------------------------------------- residual blocks
class ESA(nn.Module):
    """Enhanced spatial attention: a sigmoid mask computed on a strided, max-pooled (7, stride 3)
    quarter-channel map. The stride-2 valid conv then the pool need a side >= 15."""

    def __init__(self, n_feats: int):
        super().__init__()
        f = n_feats // 4
        self.conv1 = nn.Conv2d(n_feats, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv_max = nn.Conv2d(f, f, 3, padding=1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv3_ = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(x)
        pooled = F.max_pool2d(self.conv2(reduced), kernel_size=7, stride=3)
        m = F.relu(self.conv3(F.relu(self.conv_max(pooled))))
        m = F.interpolate(self.conv3_(m), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(m + self.conv_f(reduced)))


class ResidualBlockESA(nn.Module):
    """x + ESA(conv2(ReLU(conv1(x)))): FRFSR's ``ResidualBlockNoBN`` (use_ESA=True, res_scale 1)."""

    def __init__(self, nf: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.ESA = ESA(nf)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ESA(self.conv2(self.relu(self.conv1(x))))


# ----------------------------------------------------------------------------- RRDB (SIFE branch)
class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs (LeakyReLU 0.2); residual scaled by 0.2."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        for n in range(1, 5):
            setattr(self, f"conv{n}", nn.Conv2d(num_feat + (n - 1) * num_grow_ch, num_grow_ch, 3, 1, 1))
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        for n in range(1, 6):  # BasicSR init: kaiming normal (fan_in) x 0.1, zero bias
            conv = getattr(self, f"conv{n}")
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for n in range(1, 5):
            feats.append(F.leaky_relu(getattr(self, f"conv{n}")(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN RRDBNet (BasicSR keys). ``forward`` returns conv_first(x) + conv_body(body(.)) at LR
    size, as FRFSR's modified copy does; ``conv_up1/conv_up2/conv_hr/conv_last`` are kept so that a
    standard BasicSR x4 file loads strictly, but they are not used."""

    def __init__(self, num_in_ch: int = 3, scale: int = 4, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32):
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        return feat + self.conv_body(self.body(feat))


# ----------------------------------------------------------------------------- restoration
def flow_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``x`` (B,C,h,w) at pixel + ``flow`` (B,h,w,2; [x, y]): bilinear, zeros outside,
    align_corners=True, as the official ``flow_warp`` of the restoration net."""
    if x.shape[-2:] != flow.shape[1:3]:
        raise ValueError(f"flow_warp: features {tuple(x.shape[-2:])} and flow {tuple(flow.shape[1:3])} differ")
    h, w = x.shape[-2:]
    gy, gx = torch.meshgrid(torch.arange(h, dtype=x.dtype, device=x.device),
                            torch.arange(w, dtype=x.dtype, device=x.device), indexing="ij")
    vx = 2.0 * (gx + flow[..., 0]) / max(w - 1, 1) - 1.0
    vy = 2.0 * (gy + flow[..., 1]) / max(h - 1, 1) - 1.0
    return F.grid_sample(x, torch.stack((vx, vy), dim=3), mode="bilinear", padding_mode="zeros",
                         align_corners=True)


def _head(cin: int, ngf: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, ngf, 3, 1, 1), nn.LeakyReLU(0.1, True))


def _up_tail(ngf: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ngf, ngf * 4, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.1, True))


class UNetDynamicAggregation(nn.Module):
    """Official ``DynamicAggregationRestoration`` of FRFSR: down path at HR (relu1_1) and HR/2
    (relu2_1), up path at LR (relu3_1, fused with the SIFE features), HR/2 and HR.

    At every scale: offsets from cat[feature, flow-warped ref, raw ref]; deformable aggregation of
    the raw ref feature; ``h = head(cat[...]); h = ddf_block(h) + skip; h = body(h) + skip``.
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 16, groups: int = 8, sife_channels: int = 64):
        super().__init__()
        self.unet_head = nn.Conv2d(3, ngf, 3, 1, 1)

        def aggregation(prefix: str, ch: int) -> None:
            setattr(self, f"{prefix}_offset_conv1", nn.Conv2d(ngf + 2 * ch, ch, 3, 1, 1))
            setattr(self, f"{prefix}_offset_conv2", nn.Conv2d(ch, ch, 3, 1, 1))
            setattr(self, f"{prefix}_dyn_agg", DynamicAggregation(ch, groups))

        def ddf_block() -> nn.Sequential:
            return nn.Sequential(ResidualDDFBlock(ngf), ResidualDDFBlock(ngf))

        def body() -> nn.Sequential:
            return nn.Sequential(*[ResidualBlockESA(ngf) for _ in range(n_blocks)])

        aggregation("down_large", 64)
        self.ddf_block_1 = ddf_block()
        self.down_head_large = _head(ngf + 64, ngf)
        self.down_body_large = body()
        self.down_tail_large = nn.Conv2d(ngf, ngf, 3, 2, 1)
        aggregation("down_medium", 128)
        self.down_head_medium = _head(ngf + 128, ngf)
        self.ddf_block_2 = ddf_block()
        self.down_body_medium = body()
        self.down_tail_medium = nn.Conv2d(ngf, ngf, 3, 2, 1)
        aggregation("up_small", 256)
        self.up_head_small = _head(ngf + 256, ngf)
        self.ddf_block_3 = ddf_block()
        self.up_body_small = body()
        self.up_tail_small = _up_tail(ngf)
        aggregation("up_medium", 128)
        self.up_head_medium = _head(ngf + 128, ngf)
        self.ddf_block_4 = ddf_block()
        self.up_body_medium = body()
        self.up_tail_medium = _up_tail(ngf)
        aggregation("up_large", 64)
        self.ddf_block_5 = ddf_block()
        self.up_head_large = _head(ngf + 64, ngf)
        self.up_body_large = body()
        self.up_tail_large = nn.Sequential(nn.Conv2d(ngf, ngf // 2, 3, 1, 1), nn.LeakyReLU(0.1, True),
                                           nn.Conv2d(ngf // 2, 3, 3, 1, 1))
        self.high_q_conv1 = nn.Conv2d(sife_channels + ngf, ngf, 3, 1, 1)  # official: Conv2d(128, 64)

    def _aggregate(self, prefix: str, x: torch.Tensor, warped: torch.Tensor, ref: torch.Tensor,
                   pre_offset: torch.Tensor) -> torch.Tensor:
        cond = F.leaky_relu(getattr(self, f"{prefix}_offset_conv1")(torch.cat([x, warped, ref], 1)), 0.1)
        cond = F.leaky_relu(getattr(self, f"{prefix}_offset_conv2")(cond), 0.1)
        return F.leaky_relu(getattr(self, f"{prefix}_dyn_agg")(ref, cond, pre_offset), 0.1)

    def forward(self, base: torch.Tensor, sife: torch.Tensor, pre_offset: dict[str, torch.Tensor],
                pre_flow: dict[str, torch.Tensor], img_ref_feat: dict[str, torch.Tensor]) -> torch.Tensor:
        r1, r2, r3 = img_ref_feat["relu1_1"], img_ref_feat["relu2_1"], img_ref_feat["relu3_1"]
        w1, w2, w3 = (flow_warp(r1, pre_flow["relu1_1"]), flow_warp(r2, pre_flow["relu2_1"]),
                      flow_warp(r3, pre_flow["relu3_1"]))
        x0 = self.unet_head(base)
        # down, HR
        agg = self._aggregate("down_large", x0, w1, r1, pre_offset["relu1_1"])
        h = self.down_head_large(torch.cat([x0, agg], 1))
        h = self.ddf_block_1(h) + x0
        x1 = self.down_tail_large(self.down_body_large(h) + x0)
        # down, HR/2
        agg = self._aggregate("down_medium", x1, w2, r2, pre_offset["relu2_1"])
        h = self.down_head_medium(torch.cat([x1, agg], 1))
        h = self.ddf_block_2(h) + x1
        x2 = self.down_tail_medium(self.down_body_medium(h) + x1)
        # up, LR: the SIFE features enter here only
        agg = self._aggregate("up_small", x2, w3, r3, pre_offset["relu3_1"])
        x2_agg = F.leaky_relu(self.high_q_conv1(torch.cat([sife, x2], 1)), 0.1)
        h = self.up_head_small(torch.cat([x2_agg, agg], 1))
        h = self.ddf_block_3(h) + x2
        x = self.up_tail_small(self.up_body_small(h) + x2)
        # up, HR/2 (offsets from x alone, head input x + x1)
        agg = self._aggregate("up_medium", x, w2, r2, pre_offset["relu2_1"])
        h = self.up_head_medium(torch.cat([x + x1, agg], 1))
        h = self.ddf_block_4(h) + x
        x = self.up_tail_medium(self.up_body_medium(h) + x)
        # up, HR
        agg = self._aggregate("up_large", x, w1, r1, pre_offset["relu1_1"])
        h = self.up_head_large(torch.cat([x + x0, agg], 1))
        h = self.ddf_block_5(h) + x
        return self.up_tail_large(self.up_body_large(h) + x)


class FRFSRRestorationNet(nn.Module):
    """Official ``SwinUnetv3RestorationNet(ngf=64, n_blocks=16, groups=8)``: bilinear x4 base of
    the LR plus the U-Net residual computed from that base, the SIFE features and the ref."""

    def __init__(self, ngf: int = 64, n_blocks: int = 16, groups: int = 8, sife_channels: int = 64):
        super().__init__()
        self.dyn_agg_restore = UNetDynamicAggregation(ngf, n_blocks, groups, sife_channels)
        init_restoration(self, zero_offset_bias=True)  # the DCN weights keep DCNv2's uniform init

    def forward(self, lr: torch.Tensor, sife: torch.Tensor, pre_offset: dict[str, torch.Tensor],
                pre_flow: dict[str, torch.Tensor], img_ref_feat: dict[str, torch.Tensor]) -> torch.Tensor:
        base = F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)
        return self.dyn_agg_restore(base, sife, pre_offset, pre_flow, img_ref_feat) + base
