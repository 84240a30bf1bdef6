"""MASA-SR (Lu et al., CVPR 2021): coarse-to-fine matching with spatial adaptation.

A re-implementation of ``MASA`` from dvlab-research/MASA-SR @80d1bd8a (``models/archs/MASA_arch.py``)
with the official module tree, so the official ``masa_rec.pth`` / ``masa.pth`` load unchanged.

The matching is computed as in the paper and the official code, but without materialising the
unfolded patch tensors that make the official code memory-bound:
- coarse search (every LR block centre against every position of the downsampled reference,
  dilations 1, 2, 3) and fine search (every LR position against the reference window picked by
  the coarse search): the official cosine correlations, built in chunks of LR blocks so the
  correlation tensors stay bounded (``chunk_bytes``) for any reference size;
- transfer at x1/x2/x4: the overlap-add of the matched 3x3 patches (official ``unfold``/``fold``)
  as nine gathers of s x s reference tiles.
``forward_official`` takes the official inputs (BGR in [0,1], ``ref_down`` given);
``forward`` takes RGB in [0,1], builds ``ref_down`` as the official test loader does and clamps.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import CheckpointFile, MemoryCost, ModelSpec, RefSRModel, WeightTag
from .registry import register_model
from core.resize import pil_bicubic_tensor

_DRIVE = "https://drive.google.com/drive/folders/1O9Y4UK1PFoFKOsYTQqcQJCA_VvBWp29N"

_COMMON = dict(
    scale=4,
    lr_multiple=8,
    ref_multiple=16,
    num_refs=1,
    max_ref_side=2560,  # the official multi-reference test stacks five 512x512 references (fits 8 GiB)
    memory=MemoryCost(base_mib=42, per_lr_px=54723, per_ref_px=721),  # scripts/memory_zoo.py --fit
    paper="MASA-SR: Matching Acceleration and Spatial Adaptation for Reference-Based Image "
          "Super-Resolution (Lu, Li, Tao, Lu, Jia; CVPR 2021; arXiv:2106.02299)",
    official_repo="https://github.com/dvlab-research/MASA-SR",
    official_commit="80d1bd8a",
    licence="none stated (no LICENSE file and no licence text in the official repository)",
    test_kwargs={"nf": 8, "n_blks": (1, 1, 1), "n_blks_dec": (1, 1, 1, 1, 1, 1)},
    notes=(
        "LR sides must be multiples of 8 (the "
        "official test pads HR to 32) and at least 16; the reference is padded to 16 by the official "
        "loaders (4 is the structural minimum) and must hold the search window (forward raises "
        "otherwise; e.g. LR 16x16 needs a reference of at least 36x36). ref_down = PIL bicubic /4 of the 8-bit reference, emulated in "
        "torch. The official multi-reference test stacks five 512x512 references vertically."
    ),
)
SPEC = ModelSpec(
    name="masa",
    tags=(WeightTag("", (CheckpointFile("masa.pth", url=_DRIVE),),
                    "trained with L1 + perceptual + adversarial losses"),
          WeightTag("rec", (CheckpointFile("masa_rec.pth", url=_DRIVE),),
                    "trained with the L1 loss only: the paper's PSNR model")),
    **_COMMON)


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with identity skip (official ``ResidualBlock``, ReLU)."""

    def __init__(self, nf: int):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu_(self.conv1(x)))


def _blocks(nf: int, n: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(nf) for _ in range(n)))


class SAM(nn.Module):
    """Spatial adaptation: instance-normalised reference re-styled by learned, LR-conditioned gamma/beta."""

    def __init__(self, nf: int):
        super().__init__()
        self.norm_layer = nn.InstanceNorm2d(nf, affine=False)
        self.conv_shared = nn.Sequential(nn.Conv2d(nf * 2, nf, 3, 1, 1), nn.ReLU(inplace=True))
        self.conv_gamma = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_beta = nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        style = self.conv_shared(torch.cat([lr, ref], dim=1))
        flat = lr.flatten(2)
        gamma = self.conv_gamma(style) + flat.std(dim=-1)[..., None, None]  # unbiased, as official
        beta = self.conv_beta(style) + flat.mean(dim=-1)[..., None, None]
        return self.norm_layer(ref) * gamma + beta


class Encoder(nn.Module):
    """Three-level feature pyramid (full, /2, /4 resolution)."""

    def __init__(self, in_chl: int, nf: int, n_blks: tuple[int, int, int]):
        super().__init__()
        self.conv_L1 = nn.Conv2d(in_chl, nf, 3, 1, 1)
        self.blk_L1 = _blocks(nf, n_blks[0])
        self.conv_L2 = nn.Conv2d(nf, nf, 3, 2, 1)
        self.blk_L2 = _blocks(nf, n_blks[1])
        self.conv_L3 = nn.Conv2d(nf, nf, 3, 2, 1)
        self.blk_L3 = _blocks(nf, n_blks[2])

    def forward(self, x: torch.Tensor, levels: int = 3) -> list[torch.Tensor]:
        feats = [self.blk_L1(F.relu_(self.conv_L1(x)))]
        for conv, blk in ((self.conv_L2, self.blk_L2), (self.conv_L3, self.blk_L3))[: levels - 1]:
            feats.append(blk(F.relu_(conv(feats[-1]))))
        return feats


class DRAM(nn.Module):
    """Dual residual aggregation: fuses LR features with x2-resolution warped reference features."""

    def __init__(self, nf: int):
        super().__init__()
        self.conv_down_a = nn.Conv2d(nf, nf, 3, 2, 1)
        self.conv_up_a = nn.ConvTranspose2d(nf, nf, 3, 2, 1, 1)
        self.conv_down_b = nn.Conv2d(nf, nf, 3, 2, 1)
        self.conv_up_b = nn.ConvTranspose2d(nf, nf, 3, 2, 1, 1)
        self.conv_cat = nn.Conv2d(nf * 2, nf, 3, 1, 1)

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        out_a = F.relu_(self.conv_up_a(F.relu_(self.conv_down_a(ref)) - lr)) + ref
        out_b = F.relu_(self.conv_up_b((lr - F.relu_(self.conv_down_b(ref))) + lr))
        return F.relu_(self.conv_cat(torch.cat([out_a, out_b], dim=1)))


class Decoder(nn.Module):
    """U-shaped LR decoder, then x1 merge, x2 and x4 DRAM stages, each fed a SAM-adapted warped reference."""

    def __init__(self, nf: int, out_chl: int, n_blks: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.conv_L3 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.blk_L3 = _blocks(nf, n_blks[0])
        self.conv_L2 = nn.Conv2d(nf * 2, nf, 3, 1, 1)
        self.blk_L2 = _blocks(nf, n_blks[1])
        self.conv_L1 = nn.Conv2d(nf * 2, nf, 3, 1, 1)
        self.blk_L1 = _blocks(nf, n_blks[2])
        self.merge_warp_x1 = nn.Conv2d(nf * 2, nf, 3, 1, 1)
        self.blk_x1 = _blocks(nf, n_blks[3])
        self.dram_x2 = DRAM(nf)
        self.blk_x2 = _blocks(nf, n_blks[4])
        self.dram_x4 = DRAM(nf)
        self.blk_x4 = _blocks(nf, n_blks[5])
        self.conv_out = nn.Conv2d(nf, out_chl, 3, 1, 1)
        self.pAda = SAM(nf)

    def forward(self, lr_l: list[torch.Tensor], warp_ref_l: list[torch.Tensor]) -> torch.Tensor:
        up = _up2
        fea = self.blk_L3(F.relu_(self.conv_L3(lr_l[2])))
        fea = self.blk_L2(F.relu_(self.conv_L2(torch.cat([up(fea), lr_l[1]], dim=1))))
        fea = self.blk_L1(F.relu_(self.conv_L1(torch.cat([up(fea), lr_l[0]], dim=1))))

        warp_x1 = self.pAda(fea, warp_ref_l[2])
        fea_x1 = self.blk_x1(F.relu_(self.merge_warp_x1(torch.cat([warp_x1, fea], dim=1))))
        warp_x2 = self.pAda(up(fea_x1), warp_ref_l[1])
        fea_x2 = self.blk_x2(self.dram_x2(fea_x1, warp_x2))
        warp_x4 = self.pAda(up(fea_x2), warp_ref_l[0])
        fea_x4 = self.blk_x4(self.dram_x4(fea_x2, warp_x4))
        return self.conv_out(fea_x4)


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class MASA(RefSRModel):
    """MASA-SR x4. ``chunk_bytes`` bounds each correlation chunk (results do not depend on it)."""

    dilations = (1, 2, 3)
    lr_block_size = 8
    ref_down_block_size = 1.5

    def __init__(self, nf: int = 64, in_chl: int = 3, n_blks=(4, 4, 4), n_blks_dec=(2, 2, 2, 12, 8, 4),
                 chunk_bytes: int = 1 << 28):
        super().__init__()
        self.scale = 4
        self.chunk_bytes = chunk_bytes
        self.enc = Encoder(in_chl, nf, tuple(n_blks))
        self.decoder = Decoder(nf, in_chl, tuple(n_blks_dec))
        self._init_weights()

    def _init_weights(self, res_scale: float = 0.1) -> None:
        """Official ``weight_init``: N(0, 0.5*sqrt(2/(k*k*out))) convs, zero biases, residual
        branches x0.1, SAM gamma/beta convs zero (so SAM starts as plain AdaIN)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0, 0.5 * math.sqrt(2.0 / n))
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, ResidualBlock):
                    m.conv1.weight.mul_(res_scale)
                    m.conv2.weight.mul_(res_scale)
                elif isinstance(m, SAM):
                    m.conv_gamma.weight.zero_()
                    m.conv_beta.weight.zero_()

    # ---- our interface -------------------------------------------------------------------------
    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """RGB [0,1] in and out; BGR order and ``ref_down`` as in the official test code."""
        lr_bgr, ref_bgr = lr.flip(1), ref.flip(1)
        h, w = ref_bgr.shape[-2:]
        ref_down = pil_bicubic_tensor(ref_bgr, (h // self.scale, w // self.scale))
        return self.forward_official(lr_bgr, ref_bgr, ref_down).flip(1).clamp(0, 1)

    # ---- the official network ----------------------------------------------------------------
    def forward_official(self, lr: torch.Tensor, ref: torch.Tensor, ref_down: torch.Tensor) -> torch.Tensor:
        """Official ``MASA.forward(lr, ref, ref_down)``: BGR in [0,1], unclamped output."""
        g = self._geometry(lr, ref, ref_down)
        lrsr = F.interpolate(lr, scale_factor=self.scale, mode="bicubic")
        fea_lr = self.enc(lr)
        fea_reflr = self.enc(ref_down, levels=1)[0]  # the official computes all levels, uses only L1
        fea_ref = self.enc(ref)

        lr_pad = F.pad(fea_lr[0], (1, 1, 1, 1), mode="replicate")
        centre = self._coarse_search(lr_pad, fea_reflr, g)  # [N, P] flat index into ref_down grid
        y1, x1 = self._window_origin(centre, g)
        fine_idx, fine_att = self._fine_search(lr_pad, fea_reflr, y1, x1, g)

        # global tile index (in the ref_down grid) of the top-left tile of each matched 3x3 patch
        n_idx = torch.arange(g["N"], device=lr.device).view(-1, 1, 1, 1)
        ty = y1.view(g["N"], g["P"], 1, 1) + torch.div(fine_idx, g["dx"], rounding_mode="floor")
        tx = x1.view(g["N"], g["P"], 1, 1) + fine_idx % g["dx"]
        tiles = ((n_idx * g["Hr"] + ty) * g["Wr"] + tx).flatten(0, 1)  # [N*P, k_y, k_x]

        warped = [self._transfer(fea_ref[level], tiles, fine_att, s, g)
                  for level, s in ((0, 4), (1, 2), (2, 1))]
        return self.decoder(fea_lr, warped) + lrsr

    # ---- geometry ---------------------------------------------------------------------------------
    def _geometry(self, lr: torch.Tensor, ref: torch.Tensor, ref_down: torch.Tensor) -> dict:
        """Block layout and window sizes exactly as the official forward derives them."""
        N, _, h, w = lr.shape
        Hr, Wr = ref_down.shape[-2:]
        py, px = h // self.lr_block_size, w // self.lr_block_size
        if py == 0 or px == 0 or h % py or w % px or h % 4 or w % 4:
            raise ValueError(f"MASA needs LR sides that split into {self.lr_block_size}-pixel blocks and are "
                             f"multiples of 4 (use multiples of 8); got {h}x{w}")
        dy = 2 * int(Hr // (2 * py) * self.ref_down_block_size) + 1
        dx = 2 * int(Wr // (2 * px) * self.ref_down_block_size) + 1
        if Hr < dy + 2 or Wr < dx + 2:
            raise ValueError(f"reference too small for MASA: ref_down {Hr}x{Wr} cannot hold a "
                             f"{dy + 2}x{dx + 2} search window (LR {h}x{w})")
        H, W = ref.shape[-2:]
        if H < 4 * Hr or W < 4 * Wr:
            raise ValueError(f"ref_down {Hr}x{Wr} is larger than the reference {H}x{W} / 4")
        return dict(N=N, P=py * px, py=py, px=px, ky=h // py, kx=w // px, Hr=Hr, Wr=Wr, dy=dy, dx=dx)

    def _rows_per_chunk(self, bytes_per_row: int) -> int:
        return max(1, self.chunk_bytes // max(1, bytes_per_row))

    # ---- coarse search: one match per LR block --------------------------------------------------
    def _coarse_search(self, lr_pad: torch.Tensor, reflr: torch.Tensor, g: dict) -> torch.Tensor:
        """Best ref_down position per LR block: summed cosine similarity of its centre's 3x3
        descriptors at dilations 1, 2, 3; the [N, P, Hr*Wr] correlation is built in row chunks."""
        N, C = reflr.shape[:2]
        cy, cx = (g["ky"] + 2) // 2, (g["kx"] + 2) // 2  # block centre in padded-block coordinates
        descs, refs = [], []
        for d in self.dilations:
            taps = [lr_pad[:, :, cy + a * d::g["ky"], cx + b * d::g["kx"]][:, :, : g["py"], : g["px"]]
                    for a in (-1, 0, 1) for b in (-1, 0, 1)]
            desc = torch.stack(taps, dim=2).flatten(3).permute(0, 3, 1, 2)  # [N, P, C, 9]
            descs.append(F.normalize(desc.reshape(N, g["P"], C * 9), dim=2))
            refs.append(F.normalize(F.unfold(reflr, 3, dilation=d, padding=d), dim=1))  # [N, C*9, Hr*Wr]
        rows = self._rows_per_chunk(2 * N * g["Hr"] * g["Wr"] * reflr.element_size())
        best = []
        for p0 in range(0, g["P"], rows):
            corr = 0
            for desc, ref in zip(descs, refs):
                corr = corr + torch.bmm(desc[:, p0: p0 + rows], ref)
            best.append(corr.topk(1, dim=-1).indices[..., 0])
        return torch.cat(best, dim=1)

    def _window_origin(self, centre: torch.Tensor, g: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-left of the (dy+2)x(dx+2) window around each coarse match, shifted inside ref_down."""
        cy = torch.div(centre, g["Wr"], rounding_mode="floor")
        cx = centre % g["Wr"]
        y1 = (cy - g["dy"] // 2 - 1).clamp(0, g["Hr"] - g["dy"] - 2)
        x1 = (cx - g["dx"] // 2 - 1).clamp(0, g["Wr"] - g["dx"] - 2)
        return y1, x1

    # ---- fine search: one match per LR position inside its block's window -----------------------
    def _fine_search(self, lr_pad: torch.Tensor, reflr: torch.Tensor, y1: torch.Tensor, x1: torch.Tensor,
                     g: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Best 3x3 cosine match (index in the dy x dx window grid, and its score) per LR position,
        in chunks of LR blocks."""
        N, C = reflr.shape[:2]
        ky, kx, dy, dx = g["ky"], g["kx"], g["dy"], g["dx"]
        lr_blocks = lr_pad.unfold(2, ky + 2, ky).unfold(3, kx + 2, kx)  # [N, C, py, px, ky+2, kx+2]
        lr_blocks = lr_blocks.permute(0, 2, 3, 1, 4, 5).reshape(N * g["P"], C, ky + 2, kx + 2)
        ys = y1.reshape(-1, 1) + torch.arange(dy + 2, device=y1.device)
        xs = x1.reshape(-1, 1) + torch.arange(dx + 2, device=x1.device)
        nb = torch.arange(N, device=y1.device).repeat_interleave(g["P"])

        per_block = (2 * C * 9 * (ky * kx + dy * dx) + 2 * ky * kx * dy * dx) * reflr.element_size()
        rows = self._rows_per_chunk(per_block)
        idx_parts, att_parts = [], []
        for b0 in range(0, N * g["P"], rows):
            sl = slice(b0, b0 + rows)
            win = reflr[nb[sl, None, None], :, ys[sl, :, None], xs[sl, None, :]]  # [B, dy+2, dx+2, C]
            lr_desc = F.normalize(F.unfold(lr_blocks[sl], 3).transpose(1, 2), dim=2)  # [B, ky*kx, C*9]
            win_desc = F.normalize(F.unfold(win.permute(0, 3, 1, 2), 3), dim=1)  # [B, C*9, dy*dx]
            att, idx = torch.bmm(lr_desc, win_desc).topk(1, dim=-1)
            idx_parts.append(idx[..., 0])
            att_parts.append(att[..., 0])
        return torch.cat(idx_parts).view(N, g["P"], ky, kx), torch.cat(att_parts).view(N * g["P"], 1, ky, kx)

    # ---- transfer: overlap-add of matched patches at scale s -------------------------------------
    def _transfer(self, fea: torch.Tensor, tiles: torch.Tensor, att: torch.Tensor, s: int, g: dict) -> torch.Tensor:
        """Official ``transfer`` (unfold 3s/stride s, gather, fold, /overlap count, x attention).

        Each output s x s tile of an LR position is the mean of the tiles its three-by-three
        neighbourhood's matches put there, i.e. nine gathers of reference tiles.
        """
        N, C = fea.shape[:2]
        Hr, Wr, ky, kx, py, px = g["Hr"], g["Wr"], g["ky"], g["kx"], g["py"], g["px"]
        fea = fea[:, :, : Hr * s, : Wr * s]
        src = fea.reshape(N, C, Hr, s, Wr, s).permute(0, 2, 4, 1, 3, 5).reshape(N * Hr * Wr, C * s * s)
        src = torch.cat([src, src.new_zeros(1, C * s * s)])  # last row: zero tile for out-of-block sources
        zero = N * Hr * Wr
        padded = F.pad(tiles, (1, 1, 1, 1), value=-1)  # [N*P, ky+2, kx+2]
        out = None
        for a in range(3):
            for b in range(3):
                t = padded[:, 2 - a: 2 - a + ky, 2 - b: 2 - b + kx]
                part = src[torch.where(t >= 0, t + a * Wr + b, zero)]  # [N*P, ky, kx, C*s*s]
                out = part if out is None else out.add_(part)
        count = self._overlap(ky, tiles.device)[:, None] * self._overlap(kx, tiles.device)[None, :]
        count = count.repeat_interleave(s, 0).repeat_interleave(s, 1).to(out.dtype)  # [ky*s, kx*s]
        out = out.view(N, py, px, ky, kx, C, s, s).permute(0, 5, 1, 3, 6, 2, 4, 7)
        out = out.reshape(N, C, py, ky * s, px, kx * s) / count[:, None, :]
        att_s = F.interpolate(att, size=(ky * s, kx * s), mode="bilinear", align_corners=False)
        att_s = att_s.view(N, py, px, ky * s, kx * s).permute(0, 1, 3, 2, 4).unsqueeze(1)
        return (out * att_s).reshape(N, C, py * ky * s, px * kx * s)

    @staticmethod
    def _overlap(k: int, device) -> torch.Tensor:
        """How many 3-wide windows (stride 1, padding 1) of a length-k row cover each position."""
        c = torch.full((k,), 3.0, device=device)
        c[0] -= 1
        c[-1] -= 1
        return c


@register_model(SPEC, aliases={"masa_rec": "masa.rec"})
def masa(**kwargs) -> MASA:
    """MASA-SR x4 (official config: nf=64, encoder blocks 4/4/4, decoder blocks 2/2/2/12/8/4)."""
    return MASA(**kwargs)
