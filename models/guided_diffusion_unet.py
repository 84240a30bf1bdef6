"""The UNet noise predictor of "Diffusion Models Beat GANs on Image Synthesis" (Dhariwal & Nichol, 2021).

Written for this project from the architecture of openai/guided-diffusion @22e0df81
(``guided_diffusion/unet.py:UNetModel``), with the same module tree, so the published checkpoints
(e.g. ``256x256_diffusion_uncond.pt``) load unchanged: identical state-dict keys and shapes.
Only the inference path is implemented: no gradient checkpointing, no fp16 torso (``use_fp16``
converts dtypes only, never keys), no ``SuperResModel`` / ``EncoderUNetModel``.

Architecture facts reproduced (the ones that change numbers, not just names):
- sinusoidal timestep embedding ``[cos, sin]`` with ``max_period`` 10000 (fractional timesteps
  allowed), MLP ``Linear-SiLU-Linear`` to ``4 * model_channels``;
- GroupNorm(32 groups, eps 1e-5) evaluated in float32; SiLU everywhere;
- ResBlock: ``norm-SiLU-conv``, timestep projection, with ``use_scale_shift_norm`` the output norm
  is modulated as ``norm(h) * (1 + scale) + shift``; ``resblock_updown`` puts the nearest x2 up /
  2x2 average-pool down between the input norm+SiLU and the input conv, on both branches;
  the skip is identity, else a 1x1 conv (3x3 when ``use_conv``);
- attention over all positions; the default "legacy" order splits heads before q/k/v, the new
  order splits q/k/v before heads; q and k are each scaled by ``ch ** -0.25``; softmax in float32.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: README flags of ``256x256_diffusion_uncond.pt`` (class_cond False, learn_sigma True), in the
#: form ``script_util.create_model`` turns them into ``UNetModel`` arguments.
GUIDED_256_UNCOND = dict(
    image_size=256, in_channels=3, model_channels=256, out_channels=6, num_res_blocks=2,
    attention_resolutions=(8, 16, 32),  # 256 // (32, 16, 8): downsampling rates with attention
    channel_mult=(1, 1, 2, 2, 4, 4), num_classes=None, num_heads=4, num_head_channels=64,
    num_heads_upsample=-1, use_scale_shift_norm=True, resblock_updown=True,
    use_new_attention_order=False,
)
#: Where the authors publish that file (guided-diffusion README, "Download pre-trained models").
GUIDED_256_UNCOND_URL = "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt"


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(N,) timesteps (may be fractional) -> (N, dim) ``[cos(t f), sin(t f)]``, f geometric in [1, 1/max_period)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back (the official ``normalization`` layer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


class TimestepEmbedSequential(nn.Sequential):
    """A sequence whose ResBlocks also receive the timestep embedding."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class Upsample(nn.Module):
    """Nearest x2, then an optional 3x3 conv (key ``conv``)."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """Stride-2 3x3 conv (key ``op``) or, without conv, 2x2 average pooling."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None):
        super().__init__()
        if use_conv:
            self.op = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1)
        else:
            self.op = nn.AvgPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ResBlock(nn.Module):
    """Timestep-conditioned residual block, optionally resampling (``up`` / ``down``)."""

    def __init__(self, channels: int, emb_channels: int, dropout: float = 0.0, out_channels: int | None = None,
                 use_conv: bool = False, use_scale_shift_norm: bool = False, up: bool = False,
                 down: bool = False, norm_groups: int = 32):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(GroupNorm32(norm_groups, channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels))
        self.out_layers = nn.Sequential(GroupNorm32(norm_groups, out_channels), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        nn.init.zeros_(self.out_layers[3].weight)  # official zero_module: the block starts as identity
        nn.init.zeros_(self.out_layers[3].bias)
        if out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 3 if use_conv else 1,
                                             padding=1 if use_conv else 0)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.updown:
            h = self.in_layers[1](self.in_layers[0](x))
            h = self.in_layers[2](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            for layer in self.out_layers[1:]:
                h = layer(h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over all spatial positions (1x1 ``Conv1d`` q/k/v and output projection)."""

    def __init__(self, channels: int, num_heads: int = 1, num_head_channels: int = -1,
                 use_new_attention_order: bool = False, norm_groups: int = 32):
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f"{channels} channels are not divisible by num_head_channels {num_head_channels}")
            self.num_heads = channels // num_head_channels
        self.new_order = use_new_attention_order
        self.norm = GroupNorm32(norm_groups, channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        n, length, heads = qkv.shape[0], qkv.shape[-1], self.num_heads
        ch = c // heads
        if self.new_order:  # split q, k, v first, then heads
            q, k, v = (t.reshape(n * heads, ch, length) for t in qkv.chunk(3, dim=1))
        else:  # legacy: heads first, each holding its own [q; k; v]
            q, k, v = qkv.reshape(n * heads, 3 * ch, length).split(ch, dim=1)
        s = 1.0 / math.sqrt(math.sqrt(ch))
        w = torch.einsum("bct,bcs->bts", q * s, k * s)
        w = torch.softmax(w.float(), dim=-1).type(w.dtype)
        h = torch.einsum("bts,bcs->bct", w, v).reshape(n, -1, length)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class GuidedDiffusionUNet(nn.Module):
    """``UNetModel`` of guided-diffusion (inference). ``forward(x, t, y=None)`` -> (N, out_channels, H, W).

    With ``out_channels == 2 * in_channels`` (``learn_sigma``) the first half is the noise
    prediction epsilon and the second the variance interpolation values. ``norm_groups`` (32 in
    every official model) is a knob for tiny test configurations; it changes no key or shape.
    """

    def __init__(self, image_size: int = 256, in_channels: int = 3, model_channels: int = 256,
                 out_channels: int = 6, num_res_blocks: int = 2, attention_resolutions: Sequence[int] = (8, 16, 32),
                 dropout: float = 0.0, channel_mult: Sequence[float] = (1, 1, 2, 2, 4, 4), conv_resample: bool = True,
                 num_classes: int | None = None, num_heads: int = 1, num_head_channels: int = -1,
                 num_heads_upsample: int = -1, use_scale_shift_norm: bool = False, resblock_updown: bool = False,
                 use_new_attention_order: bool = False, norm_groups: int = 32):
        super().__init__()
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        self.image_size = image_size
        self.in_channels, self.out_channels = in_channels, out_channels
        self.model_channels = model_channels
        self.num_classes = num_classes
        self.num_levels = len(channel_mult)
        emb_dim = model_channels * 4
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, emb_dim)

        def res(cin, cout, **kw):
            return ResBlock(cin, emb_dim, dropout, cout, use_scale_shift_norm=use_scale_shift_norm,
                            norm_groups=norm_groups, **kw)

        def attn(ch, heads):
            return AttentionBlock(ch, heads, num_head_channels, use_new_attention_order, norm_groups)

        ch = input_ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        skip_chans = [ch]
        ds = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res(ch, int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in attention_resolutions:
                    layers.append(attn(ch, num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(channel_mult) - 1:
                down = res(ch, ch, down=True) if resblock_updown else Downsample(ch, conv_resample, ch)
                self.input_blocks.append(TimestepEmbedSequential(down))
                skip_chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(res(ch, ch), attn(ch, num_heads), res(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), int(model_channels * mult))]
                ch = int(model_channels * mult)
                if ds in attention_resolutions:
                    layers.append(attn(ch, num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(res(ch, ch, up=True) if resblock_updown else Upsample(ch, conv_resample, ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(GroupNorm32(norm_groups, ch), nn.SiLU(),
                                 nn.Conv2d(input_ch, out_channels, 3, padding=1))
        nn.init.zeros_(self.out[2].weight)
        nn.init.zeros_(self.out[2].bias)

    @property
    def size_multiple(self) -> int:
        """Input height/width must be a multiple of this (one halving per level but the last)."""
        return 2 ** (self.num_levels - 1)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if (y is not None) != (self.num_classes is not None):
            raise ValueError("give class labels y if and only if the model is class-conditional")
        if timesteps.dim() == 0:
            timesteps = timesteps.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        if y is not None:
            emb = emb + self.label_emb(y)
        hs = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)
