"""Building blocks of DATSR (Cao et al., ECCV 2022), kept apart from the model file.

Module names, nesting and defaults follow the official code (caojiezhang/DATSR @32240b58) so that
its checkpoints load with the same keys: the restoration U-Net ``SwinUnetv3RestorationNet`` (five
Swin bodies of residual Swin groups, five similarity-modulated deformable aggregations) and the
correspondence net ``FlowSimCorrespondence`` (official ``FlowSimCorrespondenceGenerationArch``).
The contrastive extractor, the VGG19 slice, the patch matching and the flow helpers are
C2-Matching's, imported from :mod:`models.c2_matching_parts`.

Differences in form (not in results): mmcv's ``modulated_deform_conv2d`` is
``torchvision.ops.deform_conv2d`` (same (dy, dx) offset and mask layout); the Swin
``relative_position_index`` and ``attn_mask`` buffers are not stored (the official files carry
them; :func:`drop_swin_buffers` checks and removes them) but recomputed, the masks per runtime size
exactly as the official blocks do whenever the runtime size differs from the construction size;
window attention uses ``F.scaled_dot_product_attention``. Stochastic depth (the official
blocks' timm ``DropPath``, rates ``linspace(0, 0.1)`` over each body's blocks) acts in training only.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from .c2_matching_parts import (ContentExtractor, DynamicAggregation, VGGFeatureExtractor, deform_conv2d_by_group,
                                flow_offsets, index_to_flow, patch_match_index, shifted_offsets, upscale_flow)
from .checkpoint import CheckpointError

#: the official construction sizes of the three U-Net levels (img_size of each SwinBlock); the
#: stored masks are for these, and a block keeps window 8 / shift 4 since all exceed the window.
CONSTRUCTION_SIZES = {"large": 160, "medium": 80, "small": 40}


# ----------------------------------------------------------------------------- Swin helpers
def relative_position_index(ws: int) -> torch.Tensor:
    """(ws*ws, ws*ws) index into the (2ws-1)^2 bias table for every token pair of a window."""
    ys, xs = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + ws - 1
    dx = xs[:, None] - xs[None, :] + ws - 1
    return dy * (2 * ws - 1) + dx


@functools.lru_cache(maxsize=8)
def _cached_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    return shifted_window_mask(h, w, ws, shift)


def shifted_window_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) additive mask: 0 inside one region of the rolled map, -100 across.
    Made on the CPU whatever the default device (it is cached and moved to the input's device)."""
    def bands(n: int) -> torch.Tensor:
        lab = torch.zeros(n, dtype=torch.long, device="cpu")
        lab[n - ws:] = 1
        lab[n - shift:] = 2
        return lab

    lab = bands(h)[:, None] * 3 + bands(w)[None, :]
    win = lab.view(h // ws, ws, w // ws, ws).transpose(1, 2).reshape(-1, ws * ws)
    same = win[:, :, None] == win[:, None, :]
    return torch.zeros(same.shape, device="cpu").masked_fill_(~same, -100.0)


def to_windows(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, ws*ws, C), windows row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).transpose(2, 3)
    return x.reshape(-1, ws * ws, c)


def from_windows(x: torch.Tensor, ws: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`to_windows`."""
    c = x.shape[-1]
    return x.view(b, h // ws, w // ws, ws, ws, c).transpose(2, 3).reshape(b, h, w, c)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth on a residual branch: in training each sample's branch is zeroed with
    probability ``p`` and otherwise scaled by 1/(1-p) (timm's ``DropPath``); identity at test."""
    if not training or p == 0.0:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learnt relative-position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # recomputed, not loaded: the official files' copies are checked and dropped on load
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B*nW, N, C); mask: (nW, N, N) of 0/-100 or None."""
        bw, n, c = x.shape
        h = self.num_heads
        q, k, v = self.qkv(x).view(bw, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, h).permute(2, 0, 1)  # (heads, N, N)
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0))
        else:
            nw = mask.shape[0]
            shape = (bw // nw, nw, h, n, c // h)
            out = F.scaled_dot_product_attention(q.reshape(shape), k.reshape(shape), v.reshape(shape),
                                                 attn_mask=bias.unsqueeze(0) + mask.unsqueeze(1))
            out = out.view(bw, h, n, c // h)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinTransformerBlock(nn.Module):
    """Pre-norm (shifted-)window attention + MLP, both residual, each branch with stochastic depth ``drop``."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float,
                 drop: float = 0.0):
        super().__init__()
        self.window_size, self.shift_size, self.drop = window_size, shift_size, drop
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def mask(self, h: int, w: int, device: torch.device) -> torch.Tensor | None:
        """Shifted-window mask for the runtime size (a few recent sizes are cached, shared by all blocks)."""
        if not self.shift_size:
            return None
        return _cached_mask(h, w, self.window_size, self.shift_size).to(device)

    def forward(self, x: torch.Tensor, size: tuple[int, int], chunk_tokens: int = 1 << 16) -> torch.Tensor:
        """x: (B, h*w, C). In training: the whole map, each residual branch with stochastic depth (one draw
        per sample, as the official block). At test: bands of window rows of about ``chunk_tokens`` tokens.

        Windows are independent and LayerNorm/MLP act per token, so at test the block is computed band
        by band in the rolled frame (written in place) and rolled back once: the same values as the
        whole-map form, whose q/k/v, attention and MLP temporaries reach several GB at the x4 level of a
        1000² canvas.
        """
        h, w = size
        b, _, c = x.shape
        ws, s = self.window_size, self.shift_size
        if self.training:
            y = self.norm1(x).view(b, h, w, c)
            y = torch.roll(y, (-s, -s), (1, 2)) if s else y
            y = from_windows(self.attn(to_windows(y, ws), self.mask(h, w, x.device)), ws, b, h, w)
            y = torch.roll(y, (s, s), (1, 2)) if s else y
            x = x + drop_path(y.reshape(b, h * w, c), self.drop, True)
            return x + drop_path(self.mlp(self.norm2(x)), self.drop, True)
        y = x.view(b, h, w, c)
        y = torch.roll(y, (-s, -s), (1, 2)) if s else y.clone()  # a fresh tensor, written band by band
        mask = self.mask(h, w, x.device)
        nwx = w // ws
        rows = max(1, chunk_tokens // (ws * w))  # window rows per band
        for r0 in range(0, h // ws, rows):
            r1 = min(h // ws, r0 + rows)
            band = y[:, r0 * ws:r1 * ws]
            att = self.attn(to_windows(self.norm1(band), ws), None if mask is None else mask[r0 * nwx:r1 * nwx])
            t = band + from_windows(att, ws, b, (r1 - r0) * ws, w)
            band.copy_(t + self.mlp(self.norm2(t)))
        if s:
            y = torch.roll(y, (s, s), (1, 2))
        return y.reshape(b, h * w, c)


class BasicLayer(nn.Module):
    """Swin blocks (one per stochastic-depth rate in ``drops``), every second one shifted by half a window."""

    def __init__(self, dim: int, drops: list[float], num_heads: int, window_size: int, mlp_ratio: float):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio, p)
            for i, p in enumerate(drops))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, size)
        return x


class RSTB(nn.Module):
    """Residual Swin group: blocks, then a 3x3 conv on the image layout, plus the input."""

    def __init__(self, dim: int, drops: list[float], num_heads: int, window_size: int, mlp_ratio: float):
        super().__init__()
        self.residual_group = BasicLayer(dim, drops, num_heads, window_size, mlp_ratio)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        b, _, c = x.shape
        y = self.residual_group(x, size).transpose(1, 2).reshape(b, c, *size)
        return self.conv(y).flatten(2).transpose(1, 2) + x


class _TokenNorm(nn.Module):
    """The official ``patch_embed`` with patch size 1: flatten to tokens, LayerNorm."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(2).transpose(1, 2))


class SwinBody(nn.Module):
    """Official ``SwinBlock``: token LayerNorm, residual Swin groups, LayerNorm, back to (B,C,H,W).

    The official constructor's ``img_size`` only fixes the stored masks, which are not kept here.
    Stochastic depth grows linearly from 0 to ``drop_path_rate`` over all blocks (the official
    default 0.1, which DATSR does not override).
    """

    def __init__(self, dim: int, depths=(4, 4), num_heads=(4, 4), window_size: int = 8, mlp_ratio: float = 2.0,
                 drop_path_rate: float = 0.1):
        super().__init__()
        self.window_size = window_size
        self.patch_embed = _TokenNorm(dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()  # also under a meta device
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(RSTB(dim, rates[s:s + d], nh, window_size, mlp_ratio)
                                    for s, d, nh in zip(starts, depths, num_heads))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if h % self.window_size or w % self.window_size:
            raise ValueError(f"Swin body input {h}x{w} is not a multiple of the window {self.window_size} "
                             "(the HR size must be a multiple of 32)")
        t = self.patch_embed(x)
        for layer in self.layers:
            t = layer(t, (h, w))
        return self.norm(t).transpose(1, 2).reshape(b, c, h, w)


# ----------------------------------------------------------------------------- restoration
class SimilarityDynAgg(DynamicAggregation):
    """Official ``DCN_sep_pre_multi_offset_flow_similarity`` (same keys as C2's aggregation).

    Learnt offsets are bounded, ``10 * tanh``, before the matched flow is added; the mask logits are
    multiplied by the matching similarity before the sigmoid.
    """

    def __init__(self, channels: int, groups: int, max_residue_magnitude: float = 10.0):
        super().__init__(channels, groups)
        self.max_residue_magnitude = max_residue_magnitude

    def forward(self, ref_feat: torch.Tensor, cond: torch.Tensor, pre_offset: torch.Tensor,
                pre_sim: torch.Tensor) -> torch.Tensor:
        offset_mask = self.conv_offset_mask(cond)
        n = offset_mask.shape[1] // 3
        b, _, h, w = offset_mask.shape
        # in place on fresh tensors: at the x4 level of a 1000² canvas each of these is ~0.6 GB (the
        # tanh's output only when no autograd graph keeps it for its backward)
        offset = offset_mask[:, : 2 * n].tanh()
        offset = offset * self.max_residue_magnitude if torch.is_grad_enabled() else offset.mul_(self.max_residue_magnitude)
        offset.view(b, self.groups, -1, h, w).add_(flow_offsets(pre_offset).unsqueeze(1))
        mask = offset_mask[:, 2 * n:].mul(pre_sim).sigmoid_()
        del offset_mask
        return deform_conv2d_by_group(ref_feat, offset, self.weight, self.bias, mask, self.groups)


def flow_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear warp of (B,C,H,W) by a (B,H,W,2) [x, y] flow; zeros outside; align_corners=True."""
    if x.shape[-2:] != flow.shape[1:3]:
        raise ValueError(f"flow {tuple(flow.shape[1:3])} does not match features {tuple(x.shape[-2:])}")
    _, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype, device=x.device),
                            torch.arange(w, dtype=x.dtype, device=x.device), indexing="ij")
    gx = 2.0 * (xs + flow[..., 0]) / max(w - 1, 1) - 1.0
    gy = 2.0 * (ys + flow[..., 1]) / max(h - 1, 1) - 1.0
    return F.grid_sample(x, torch.stack((gx, gy), -1), mode="bilinear", padding_mode="zeros", align_corners=True)


def _lrelu_head(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.LeakyReLU(0.1, True))


def _up_tail(ngf: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ngf, ngf * 4, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.1, True))


class DynamicAggregationRestoration(nn.Module):
    """U-Net: down at x4 (relu1_1) and x2 (relu2_1), up at x1 (relu3_1), x2, x4.

    At every level: offset features from [decoder state, flow-warped reference feature, reference
    feature], a similarity-modulated deformable aggregation of the reference feature, a head conv
    on [state, aggregated], a Swin body with a skip.
    """

    # (prefix, VGG layer, reference channels)
    stages = (("down_large", "relu1_1", 64), ("down_medium", "relu2_1", 128), ("up_small", "relu3_1", 256),
              ("up_medium", "relu2_1", 128), ("up_large", "relu1_1", 64))

    def __init__(self, ngf: int = 64, groups: int = 8, depths=(4, 4), num_heads=(4, 4), window_size: int = 8,
                 mlp_ratio: float = 2.0):
        super().__init__()
        self.unet_head = nn.Conv2d(3, ngf, 3, 1, 1)
        for prefix, _, ch in self.stages:
            level, name = prefix.split("_")
            setattr(self, f"{prefix}_offset_conv1", nn.Conv2d(ngf + 2 * ch, ch, 3, 1, 1))
            setattr(self, f"{prefix}_offset_conv2", nn.Conv2d(ch, ch, 3, 1, 1))
            setattr(self, f"{prefix}_dyn_agg", SimilarityDynAgg(ch, groups))
            setattr(self, f"{level}_head_{name}", _lrelu_head(ngf + ch, ngf))
            setattr(self, f"{level}_body_{name}", SwinBody(ngf, depths, num_heads, window_size, mlp_ratio))
        self.down_tail_large = nn.Conv2d(ngf, ngf, 3, 2, 1)
        self.down_tail_medium = nn.Conv2d(ngf, ngf, 3, 2, 1)
        self.up_tail_small = _up_tail(ngf)
        self.up_tail_medium = _up_tail(ngf)
        self.up_tail_large = nn.Sequential(nn.Conv2d(ngf, ngf // 2, 3, 1, 1), nn.LeakyReLU(0.1, True),
                                           nn.Conv2d(ngf // 2, 3, 3, 1, 1))
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def _aggregate(self, prefix: str, layer: str, x: torch.Tensor, warped: dict, pre_offset: dict,
                   pre_sim: dict, ref_feat: dict) -> torch.Tensor:
        ref = ref_feat[layer]
        cond = self.lrelu(getattr(self, f"{prefix}_offset_conv1")(torch.cat([x, warped[layer], ref], 1)))
        cond = self.lrelu(getattr(self, f"{prefix}_offset_conv2")(cond))
        return self.lrelu(getattr(self, f"{prefix}_dyn_agg")(ref, cond, pre_offset[layer], pre_sim[layer]))

    def forward(self, base: torch.Tensor, pre_offset_flow_sim, img_ref_feat: dict[str, torch.Tensor]) -> torch.Tensor:
        pre_offset, pre_flow, pre_sim = pre_offset_flow_sim
        warped = {k: flow_warp(img_ref_feat[k], pre_flow[k]) for k in ("relu1_1", "relu2_1", "relu3_1")}
        offs = (warped, pre_offset, pre_sim, img_ref_feat)  # what every aggregation reads
        x0 = self.unet_head(base)
        # down
        agg = self._aggregate("down_large", "relu1_1", x0, *offs)
        h = self.down_body_large(self.down_head_large(torch.cat([x0, agg], 1))) + x0
        x1 = self.down_tail_large(h)
        agg = self._aggregate("down_medium", "relu2_1", x1, *offs)
        h = self.down_body_medium(self.down_head_medium(torch.cat([x1, agg], 1))) + x1
        x2 = self.down_tail_medium(h)
        # up
        agg = self._aggregate("up_small", "relu3_1", x2, *offs)
        h = self.up_body_small(self.up_head_small(torch.cat([x2, agg], 1))) + x2
        x = self.up_tail_small(h)
        agg = self._aggregate("up_medium", "relu2_1", x, *offs)
        h = self.up_body_medium(self.up_head_medium(torch.cat([x + x1, agg], 1))) + x
        x = self.up_tail_medium(h)
        agg = self._aggregate("up_large", "relu1_1", x, *offs)
        h = self.up_body_large(self.up_head_large(torch.cat([x + x0, agg], 1))) + x
        return self.up_tail_large(h)


class SwinUnetv3RestorationNet(nn.Module):
    """Official net_g: bilinear x4 base plus the U-Net residual.

    ``content_extractor`` exists (its weights are in the official files and in the parameter count)
    but its output is never used by the official forward; it is not run here
    (``run_content_extractor=True`` runs it, for checks).
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 16, groups: int = 8, embed_dim: int = 64, depths=(8, 8),
                 num_heads=(8, 8), window_size: int = 8, use_checkpoint: bool = False,
                 run_content_extractor: bool = False):
        super().__init__()
        del embed_dim, use_checkpoint  # official: the bodies use ngf as width; checkpointing is a training option
        self.run_content_extractor = run_content_extractor
        self.content_extractor = ContentExtractor(3, ngf, n_blocks)
        self.dyn_agg_restore = DynamicAggregationRestoration(ngf, groups, tuple(depths), tuple(num_heads), window_size)
        # official init: N(0, 0.02) for every Conv/Linear weight, zero biases; DCN weights keep their
        # uniform init; offset/mask convs zero
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, SimilarityDynAgg):
                nn.init.zeros_(m.conv_offset_mask.weight)
                nn.init.zeros_(m.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor, pre_offset_flow_sim, img_ref_feat: dict[str, torch.Tensor]) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
        if self.run_content_extractor:
            self.content_extractor(x)
        return self.dyn_agg_restore(base, pre_offset_flow_sim, img_ref_feat) + base


def drop_swin_buffers(sd: dict[str, torch.Tensor], construction_sizes: dict[str, int] = CONSTRUCTION_SIZES
                      ) -> dict[str, torch.Tensor]:
    """Remove the constructor-computed Swin buffers of an official net_g file after checking them.

    ``relative_position_index`` must equal the standard index and ``attn_mask`` the shifted-window
    mask of its body's construction size (window = sqrt of the index side, shift = window/2);
    anything else is a file this implementation would not reproduce (CheckpointError).
    Tensors without values (``meta``) are only dropped.
    """
    out = {}
    for k, v in sd.items():
        if k.endswith(".attn.relative_position_index"):
            ws = int(round(v.shape[0] ** 0.5))
            if not v.is_meta and not torch.equal(v.long(), relative_position_index(ws)):
                raise CheckpointError(f"{k}: not the standard Swin relative-position index")
        elif k.endswith(".attn_mask"):
            level = k.split(".")[1].split("_")[-1]  # dyn_agg_restore.<level>_body_<size>.…
            n = construction_sizes[level]
            ws = int(round(v.shape[-1] ** 0.5))
            if not v.is_meta and not torch.equal(v.float(), shifted_window_mask(n, n, ws, ws // 2)):
                raise CheckpointError(f"{k}: not the shifted-window mask of a {n}x{n} body")
        else:
            out[k] = v
    return out


# ----------------------------------------------------------------------------- correspondence
def _best_match_similarity(f_in: torch.Tensor, f_ref: torch.Tensor, idx: torch.Tensor, k: int) -> torch.Tensor:
    """Official ``max_val`` with ``norm_input``: <in patch, ref patch[idx]> / (|ref patch|+1e-5) / (|in patch|+1e-5)."""
    c, h, w = f_in.shape
    ho, wo = idx.shape
    ref_w = f_ref.shape[-1] - k + 1
    ry, rx = idx // ref_w, idx % ref_w
    dot = f_in.new_zeros(ho, wo)
    ref_sq = f_in.new_zeros(ho, wo)
    for a in range(k):
        for b in range(k):
            r = f_ref[:, ry + a, rx + b]  # (c, ho, wo)
            dot += (f_in[:, a:a + ho, b:b + wo] * r).sum(0)
            ref_sq += r.pow(2).sum(0)
    in_sq = F.avg_pool2d(f_in.pow(2).sum(0)[None, None], k, 1)[0, 0] * (k * k)
    return dot / (ref_sq.sqrt() + 1e-5) / (in_sq.clamp_min(0).sqrt() + 1e-5)


class FlowSimCorrespondence(nn.Module):
    """Official net_map (``FlowSimCorrespondenceGenerationArch``): only weights are ``vgg.*``.

    Matches the per-pixel L2-normalised relu3_1-level contrastive features (3x3 patches, stride 1)
    and returns ``[pre_offset, pre_flow, pre_similarity]`` per VGG layer plus the reference's
    ImageNet-VGG19 features. The input and the reference must have the same size (the official
    dataset pads them to a common size; the flow decoding assumes it).
    """

    def __init__(self, patch_size: int = 3, match_chunk_elems: int = 1 << 25):
        super().__init__()
        self.vgg = VGGFeatureExtractor()
        self.patch_size = patch_size
        self.match_chunk_elems = match_chunk_elems

    def match(self, feat_in: torch.Tensor, feat_ref: torch.Tensor):
        if feat_in.shape != feat_ref.shape:
            raise ValueError(f"input features {tuple(feat_in.shape)} and reference features "
                             f"{tuple(feat_ref.shape)} differ: pad both images to one size first")
        k = self.patch_size
        flows, sims = [], []
        for f_in, f_ref in zip(feat_in, feat_ref):
            f_in = F.normalize(f_in, dim=0)
            f_ref = F.normalize(f_ref, dim=0)
            idx = patch_match_index(f_in, f_ref, k, self.match_chunk_elems)
            flows.append(index_to_flow(idx, f_ref.shape[-1] - k + 1, k - 1))
            sims.append(F.pad(_best_match_similarity(f_in, f_ref, idx, k), (1, 1, 1, 1))[None])
        flow3, sim3 = torch.stack(flows), torch.stack(sims)
        flow2, flow1 = upscale_flow(flow3, 2), upscale_flow(flow3, 4)
        sim2 = sim3.repeat_interleave(2, 2).repeat_interleave(2, 3)
        sim1 = sim2.repeat_interleave(2, 2).repeat_interleave(2, 3)
        pre_offset = {"relu1_1": shifted_offsets(flow1, 4, k), "relu2_1": shifted_offsets(flow2, 2, k),
                      "relu3_1": shifted_offsets(flow3, 1, k)}
        pre_flow = {"relu1_1": flow1, "relu2_1": flow2, "relu3_1": flow3}
        pre_similarity = {"relu1_1": sim1, "relu2_1": sim2, "relu3_1": sim3}
        return [pre_offset, pre_flow, pre_similarity]

    def forward(self, features: dict[str, torch.Tensor], img_ref: torch.Tensor):
        return self.match(features["dense_features1"], features["dense_features2"]), self.vgg(img_ref)
