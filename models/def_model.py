"""DEF: Detail-Enhancing Framework for Reference-Based Image Super-Resolution (Wang, Xiong, Tang, Yuan).

No official code and no published DEF weights exist; this is an implementation from the paper.
Two stages, as in its Fig. 2:

1. **Detail enhancement** (Sec. 3.1, 4.2, 4.5): DDNM-style range/null-space refinement of the LR.
   A pretrained unconditional diffusion model runs its reverse process from noise on 256x256 HR
   patches; at every step the clean-image estimate is projected onto the LR-consistent set,
   ``x0|t <- A^+ y + (I - A^+ A) x0|t``, where ``A`` is bicubic x4 downsampling written as a
   separable linear operator (one matrix per axis) and ``A^+`` its exact pseudo-inverse (SVD of
   each axis matrix; ``A^+ = kron`` of the per-axis pseudo-inverses). Patches overlap by half
   and a later patch overwrites the overlap of an earlier one (Sec. 4.2). The denoiser is any
   callable ``eps(x_t, t)``; the default is the public guided-diffusion 256x256 unconditional UNet.
2. **Texture transfer** (Sec. 4.3, 4.4): one frozen VGG19 extractor for both the enhanced image and
   the (not down-up-sampled) reference, cosine matching of 3x3 feature patches at relu3_1 giving an
   index map ``P`` and a confidence map ``C`` (Eq. 11-12), per-scale modulated deformable
   convolution sampling the reference features around ``P`` with learnt offsets and masks,
   weighted by ``C`` (Eq. 13), and TTSR's cross-scale integration (``models.ttsr.MainNet``).

Every choice the paper leaves open is listed in ``SPEC.notes``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.resize import pil_bicubic_weights, resize_matrix

from .base import CheckpointFile, MemoryCost, ModelSpec, RefSRModel, WeightTag
from .c2_matching_parts import DynamicAggregation, upscale_flow
from .guided_diffusion_unet import GUIDED_256_UNCOND, GUIDED_256_UNCOND_URL, GuidedDiffusionUNet
from .registry import register_model
from .ttsr import LTE, MainNet, relevance


TEXTURE_FILE = "def_texture_transfer.pth"
DENOISER_FILE = "256x256_diffusion_uncond.pt"
TAGS = (
    WeightTag("", (CheckpointFile(DENOISER_FILE, role="denoiser", url=GUIDED_256_UNCOND_URL),
                   CheckpointFile(TEXTURE_FILE, role="net_g", url="")),
              description="DEF as in the paper: guided-diffusion 256x256 unconditional denoiser (public, "
                          "openai/guided-diffusion) + texture-transfer network. The texture-transfer "
                          "weights are NOT published (no official code or weights); the file name is "
                          "ours, for weights trained with this project's trainer."),
)

_NOTES = (
    "No official code, no published DEF weights: only the denoiser (256x256_diffusion_uncond.pt, "
    "openai/guided-diffusion, MIT) is public; net_g must be trained (paper: CUFED5, Adam 1e-4, "
    "batch 9, L_rec + 1e-2 L_per + 1e-4 L_adv, rec only for 2 warm-up epochs). "
    "Choices the paper leaves open: "
    "(1) degradation A = bicubic x4 of the project's default LR protocol (refsr-standard: PIL "
    "BICUBIC, core.resize.pil_bicubic_weights) as the exact real-valued linear map "
    "(PIL's float weights before its 22-bit fixed-point rounding and 8-bit intermediate; border taps "
    "truncated and renormalised as PIL does); kernel='matlab' uses core.resize.resize_matrix "
    "(antialiased, mirror borders) instead. A^+ per axis from the SVD, singular values below "
    "1e-10 x the largest dropped (none are, A has full row rank). "
    "(2) schedule: the paper's '1 - alpha_0 = 1e-6, 1 - alpha_T = 1e-2' is read with alpha_t the "
    "per-step DDPM alpha (alpha_t = 1 - beta_t), as in SR3's linear_start/linear_end: betas = "
    "linspace(1e-6, 1e-2, T) in float64, T = 1000, alpha_bar = cumprod(1 - betas); the first "
    "step's beta is 1e-6, the last's 1e-2. (The cumulative reading, 1 - alpha_bar_T = 1e-2, would "
    "leave x_T 99% signal and is not a generative schedule.) The public denoiser was trained with "
    "linspace(1e-4, 2e-2, 1000); timestep_map='index' (default, literal) feeds it the step index, "
    "timestep_map='noise_level' feeds the fractional timestep of its own schedule with the same "
    "alpha_bar. "
    "(3) reverse step: DDNM's generalised DDIM update x_{t-1} = sqrt(ab_prev) x0_hat + c1 z + c2 eps, "
    "c1 = eta sqrt((1 - ab_t/ab_prev)(1 - ab_prev)/(1 - ab_t)), c2 = sqrt(1 - ab_prev - c1^2); "
    "eta = 1 (the DDPM posterior variance) by default; no clipping of x0|t; the learnt variance "
    "channels of the UNet are ignored; the last step returns the projected x0. steps < T respaces "
    "as guided-diffusion's space_timesteps (round(i (T-1)/(steps-1))). "
    "(4) patches: the paper's 1-D example (windows of two half-patch divisions, window i+1 overwriting "
    "the shared division) applied along both axes: 256x256 HR windows (64x64 LR) at stride 128 in raster order, each "
    "a separate reverse process with its own operator on the window and its own seeded noise "
    "(seed + window index), a later window overwriting the overlap (Sec. 4.2); the last window of "
    "an axis is aligned to the image end; an axis shorter than 256 HR is one window of its own "
    "length, padded (reflect, else replicate) to 256 only for the denoiser call. The stitched "
    "image is then projected once more with the full-image operator (Eq. 9 with x_n = the stitched "
    "image), so A(x_hat) = y holds exactly across seams too. The enhanced image is clamped to [0,1] "
    "only for the texture network. "
    "(5) texture network: extractor = VGG19 relu1_1/relu2_1/relu3_1 (TTSR's LTE layout), frozen and "
    "shared by the enhanced image and the reference; the reference is neither down- nor "
    "up-sampled (Sec. 4.3) and is cropped to a multiple of 4; matching = TTSR's cosine of zero-padded "
    "3x3 relu3_1 patches (Eq. 11-12); per level (x1 relu3_1, x2 relu2_1, x4 relu1_1) the index map is "
    "upscaled by nearest repetition (displacement x s); offsets/masks from conv3x3(2C->C)-LReLU(0.1)-"
    "conv3x3(C->C)-LReLU on [reference features warped by P, enhanced-image features], then "
    "C2-Matching's DynamicAggregation (modulated DCN, 8 deformable groups, offsets = matched "
    "displacement + learnt residual, sigmoid mask, torchvision deform_conv2d), output times the "
    "confidence upsampled (nearest) to the level (Eq. 13), no activation. Integration = TTSR's MainNet "
    "(SFE on the LR in [-1,1], CSFI, merge tail; the enhanced image, like TTSR's upsampled LR, only drives "
    "matching and the DCN offsets) with its soft-attention input set to 1 (the "
    "confidence is already applied by Eq. 13; the paper drops TTSR's transformer, Sec. 5.3.2). "
    "Parameters: net_g 10,699,095 (frozen VGG 555,340 + DCN transfer 3,969,480 + MainNet 6,174,275); "
    "denoiser 552,814,086. Cost: the default runs 1000 UNet evaluations per 256x256 window.")

SPEC = ModelSpec(
    name="def",
    scale=4,
    lr_multiple=1,
    ref_multiple=4,
    # the denoiser runs one 256x256 window at a time (the peak does not depend on the step count); fitted
    # (scripts/memory_zoo.py --fit-table) to LR 32²/Ref 128², 64²/256², CUFED5 and WR-SR size (3,832 MiB
    # extra, 6,696 MiB peak RSS, steps=2; docs/reliability.md), none above its estimate
    max_ref_side=1152,
    memory=MemoryCost(base_mib=887, per_lr_px=40274, per_lr_ref_px=0.186),
    num_refs=1,
    paper="Wang, Xiong, Tang, Yuan. Detail-Enhancing Framework for Reference-Based Image "
          "Super-Resolution (arXiv:2405.00431, 2024)",
    official_repo="",
    official_commit="",
    licence="no official code; denoiser weights: openai/guided-diffusion (MIT)",
    test_kwargs={
        "unet_config": dict(image_size=64, in_channels=3, model_channels=16, out_channels=6, num_res_blocks=1,
                            attention_resolutions=(4,), channel_mult=(1, 2, 2), num_head_channels=8,
                            use_scale_shift_norm=True, resblock_updown=True, norm_groups=8),
        "patch": 64, "steps": 3, "num_res_blocks": (1, 1, 1, 1), "n_feats": 8, "groups": 2,
    },
    notes=_NOTES,
    tags=TAGS,
)

# --------------------------------------------------------------------------- degradation operator


def bicubic_matrix(in_size: int, out_size: int, kernel: str = "pil") -> np.ndarray:
    """One axis of the bicubic resize: ``pil`` (the RefSR LR convention) or ``matlab`` (imresize)."""
    if kernel == "pil":
        return pil_bicubic_weights(in_size, out_size)
    if kernel == "matlab":
        return resize_matrix(in_size, out_size, out_size / in_size, antialias=True)
    raise ValueError(f"unknown bicubic kernel {kernel!r} (pil or matlab)")


def pinv_svd(mat: np.ndarray, rcond: float = 1e-10) -> np.ndarray:
    """Moore-Penrose pseudo-inverse from the SVD ``U S V^T``: ``V S^-1 U^T`` over the kept singular values."""
    u, s, vt = np.linalg.svd(mat, full_matrices=False)
    keep = s > rcond * s.max()
    return (vt[keep].T / s[keep]) @ u[:, keep].T


@lru_cache(maxsize=64)
def _axis_pair(hr: int, lr: int, kernel: str) -> tuple[torch.Tensor, torch.Tensor]:
    a = bicubic_matrix(hr, lr, kernel)
    return torch.from_numpy(a), torch.from_numpy(pinv_svd(a))


class BicubicOperator:
    """``A``: (.., H, W) -> (.., H/s, W/s), ``A x = A_h x A_w^T``, and its pseudo-inverse.

    ``A = A_h (x) A_w`` (Kronecker product on row-major vectorised images), so
    ``A^+ = A_h^+ (x) A_w^+``: ``A^+ y = A_h^+ y A_w^{+T}``. Applied in float64.
    """

    def __init__(self, hr_size: tuple[int, int], scale: int = 4, kernel: str = "pil"):
        H, W = hr_size
        if H % scale or W % scale:
            raise ValueError(f"HR size {hr_size} is not a multiple of the scale {scale}")
        self.hr_size, self.lr_size = (H, W), (H // scale, W // scale)
        (self.ah, self.ah_pinv), (self.aw, self.aw_pinv) = (_axis_pair(H, H // scale, kernel),
                                                            _axis_pair(W, W // scale, kernel))

    @staticmethod
    def _apply(x: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return left.to(x.device) @ x.double() @ right.to(x.device).t()

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(x, self.ah, self.aw).to(x.dtype)

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:
        return self._apply(y, self.ah_pinv, self.aw_pinv).to(y.dtype)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``A^+ y + (I - A^+ A) x`` (= ``x - A^+ (A x - y)``): keep x's null space, take y's range space."""
        xd = x.double()
        resid = self._apply(xd, self.ah, self.aw) - y.double()
        return (xd - self._apply(resid, self.ah_pinv, self.aw_pinv)).to(x.dtype)


# --------------------------------------------------------------------------- noise schedule


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-6, beta_end: float = 1e-2) -> np.ndarray:
    """float64 ``linspace(beta_start, beta_end, T)``: ``1 - alpha_t`` for t = first .. last step."""
    return np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)


def respaced_timesteps(num_steps: int, steps: int) -> list[int]:
    """``steps`` of the ``num_steps`` indices, evenly spaced with both ends (guided-diffusion's rule)."""
    if not 1 <= steps <= num_steps:
        raise ValueError(f"steps must be in 1..{num_steps}, got {steps}")
    if steps == 1:
        return [num_steps - 1]
    stride = (num_steps - 1) / (steps - 1)
    return sorted({round(i * stride) for i in range(steps)})


def noise_level_timesteps(alpha_bar: np.ndarray, model_alpha_bar: np.ndarray) -> np.ndarray:
    """Fractional timesteps of the denoiser's own schedule with the same ``alpha_bar`` (log-linear interp)."""
    t = np.arange(len(model_alpha_bar), dtype=np.float64)
    # np.interp needs increasing x: -log(alpha_bar) increases with t
    return np.interp(-np.log(alpha_bar), -np.log(model_alpha_bar), t)


# --------------------------------------------------------------------------- patches


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Window origins along one axis: every ``stride``, the last aligned to the end; one if short."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def windows(height: int, width: int, size: int) -> list[tuple[int, int, int, int]]:
    """Half-overlapping windows (top, left, h, w) in raster order; later ones overwrite earlier ones."""
    stride = max(size // 2, 1)
    return [(top, left, min(size, height), min(size, width))
            for top in window_starts(height, size, stride) for left in window_starts(width, size, stride)]


def _pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


# --------------------------------------------------------------------------- detail enhancer


class DetailEnhancer:
    """DDNM range/null-space refinement of an LR image with a pluggable noise predictor.

    ``denoiser(x_t, t)`` takes (N,3,P,P) in [-1,1] scale and (N,) timesteps and returns (N,>=3,P,P)
    whose first 3 channels are epsilon. The schedule holds no parameters, so this is not a module.
    """

    def __init__(self, num_steps: int = 1000, steps: int | None = None, beta_start: float = 1e-6,
                 beta_end: float = 1e-2, eta: float = 1.0, patch: int = 256, scale: int = 4,
                 kernel: str = "pil", timestep_map: str = "index",
                 model_betas: np.ndarray | None = None, seed: int = 0, global_projection: bool = True):
        if patch % (2 * scale):
            raise ValueError(f"patch {patch} must be a multiple of 2 x scale ({2 * scale})")
        if timestep_map not in ("index", "noise_level"):
            raise ValueError(f"timestep_map must be 'index' or 'noise_level', got {timestep_map!r}")
        self.betas = linear_betas(num_steps, beta_start, beta_end)
        self.alpha_bar = np.cumprod(1.0 - self.betas)
        self.timesteps = respaced_timesteps(num_steps, steps or num_steps)
        self.eta, self.patch, self.scale, self.kernel, self.seed = eta, patch, scale, kernel, seed
        self.global_projection = global_projection
        if timestep_map == "index":
            self.model_t = {t: float(t) for t in self.timesteps}
            self.t_dtype = torch.long
        else:
            mb = linear_betas(1000, 1e-4, 2e-2) if model_betas is None else np.asarray(model_betas, np.float64)
            mt = noise_level_timesteps(self.alpha_bar[self.timesteps], np.cumprod(1.0 - mb))
            self.model_t = dict(zip(self.timesteps, mt.tolist()))
            self.t_dtype = torch.float32

    def __call__(self, lr: torch.Tensor, denoiser: Callable) -> torch.Tensor:
        """(B,3,h,w) LR in [0,1] -> (B,3,s*h,s*w) enhanced image, NOT clamped, with A(x) = lr."""
        outs = []
        for b in range(lr.shape[0]):  # each image on its own: batch-independent, same noise per image
            outs.append(self.enhance_one(lr[b:b + 1], denoiser))
        return torch.cat(outs)

    def enhance_one(self, lr: torch.Tensor, denoiser: Callable) -> torch.Tensor:
        s = self.scale
        y = lr * 2 - 1
        h, w = y.shape[-2:]
        canvas = y.new_full((1, 3, s * h, s * w), float("nan"))
        for k, (top, left, wh, ww) in enumerate(windows(h, w, self.patch // s)):
            gen = torch.Generator().manual_seed(self.seed + k)
            y_win = y[..., top:top + wh, left:left + ww]
            x = self.reverse_process(y_win, denoiser, gen)
            canvas[..., s * top:s * (top + wh), s * left:s * (left + ww)] = x
        if self.global_projection:
            canvas = BicubicOperator((s * h, s * w), s, self.kernel).project(canvas, y)
        return (canvas + 1) / 2

    def reverse_process(self, y: torch.Tensor, denoiser: Callable, gen: torch.Generator) -> torch.Tensor:
        """One window: DDNM sampling from N(0, I); returns the last projected x0 ([-1,1] scale)."""
        s = self.scale
        H, W = s * y.shape[-2], s * y.shape[-1]
        op = BicubicOperator((H, W), s, self.kernel)
        x = torch.randn((1, 3, H, W), generator=gen, dtype=torch.float32).to(y)
        ts, ab = self.timesteps, self.alpha_bar
        for i in reversed(range(len(ts))):
            at = float(ab[ts[i]])
            ap = float(ab[ts[i - 1]]) if i > 0 else 1.0
            t_in = torch.full((1,), self.model_t[ts[i]], dtype=self.t_dtype, device=y.device)
            eps = denoiser(_pad_to(x, self.patch, self.patch), t_in)[:, :3, :H, :W].to(x.dtype)
            x0 = op.project((x - math.sqrt(1 - at) * eps) / math.sqrt(at), y)
            if i == 0:
                return x0
            c1 = self.eta * math.sqrt((1 - at / ap) * (1 - ap) / (1 - at))
            c2 = math.sqrt(max(1 - ap - c1 * c1, 0.0))
            z = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(x)
            x = math.sqrt(ap) * x0 + c1 * z + c2 * eps
        raise AssertionError("unreachable")


# --------------------------------------------------------------------------- texture transfer


class LevelTransfer(nn.Module):
    """Eq. 13 at one scale: DCN sampling of reference features around the matched position, times C."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.offset_conv1 = nn.Conv2d(2 * channels, channels, 3, 1, 1)
        self.offset_conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.dcn = DynamicAggregation(channels, groups)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, ref_feat: torch.Tensor, de_feat: torch.Tensor, disp: torch.Tensor,
                conf: torch.Tensor) -> torch.Tensor:
        """``ref_feat`` (B,C,Hr,Wr), ``de_feat`` (B,C,H,W), ``disp`` (B,H,W,2) integer [x, y]
        displacement to the matched reference position, ``conf`` (B,1,H,W)."""
        B, C, H, W = de_feat.shape
        Hr, Wr = ref_feat.shape[-2:]
        ys = torch.arange(H, device=disp.device).view(1, H, 1)
        xs = torch.arange(W, device=disp.device).view(1, 1, W)
        idx = ((ys + disp[..., 1].long()) * Wr + xs + disp[..., 0].long()).view(B, 1, H * W)
        warped = ref_feat.reshape(B, C, Hr * Wr).gather(2, idx.expand(B, C, H * W)).view(B, C, H, W)
        cond = self.lrelu(self.offset_conv1(torch.cat((warped, de_feat), 1)))
        cond = self.lrelu(self.offset_conv2(cond))
        # deform_conv2d keeps the input's size: run it on a common canvas, keep the H x W part
        Hc, Wc = max(H, Hr), max(W, Wr)
        pre = disp.float().unsqueeze(1).expand(B, 9, H, W, 2)
        pre = F.pad(pre, (0, 0, 0, Wc - W, 0, Hc - H))
        out = self.dcn(F.pad(ref_feat, (0, Wc - Wr, 0, Hc - Hr)), F.pad(cond, (0, Wc - W, 0, Hc - H)), pre)
        return out[..., :H, :W] * conf


class DEFTextureNet(nn.Module):
    """Shared frozen extractor, cosine matching on the enhanced image, DCN transfer, TTSR integration."""

    levels = (("lv3", 256, 1), ("lv2", 128, 2), ("lv1", 64, 4))

    def __init__(self, num_res_blocks: tuple[int, int, int, int] = (16, 16, 8, 4), n_feats: int = 64,
                 res_scale: float = 1.0, groups: int = 8, chunk_elements: int = 2 ** 24):
        super().__init__()
        self.LTE = LTE()
        for p in self.LTE.parameters():
            p.requires_grad_(False)  # Sec. 4.5: the extractor's weights stay fixed
        self.transfer = nn.ModuleDict({name: LevelTransfer(ch, groups) for name, ch, _ in self.levels})
        self.MainNet = MainNet(tuple(num_res_blocks), n_feats, res_scale)
        self.chunk_elements = chunk_elements

    def match(self, de_lv3: torch.Tensor, ref_lv3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 11-12 per image: confidence C (B,1,h,w) and index P (B,h,w) into the Hr*Wr relu3_1 grid."""
        conf, idx = zip(*(relevance(de_lv3[b], ref_lv3[b], self.chunk_elements) for b in range(de_lv3.shape[0])))
        return torch.stack(conf)[:, None], torch.stack(idx)

    def forward(self, lr: torch.Tensor, de: torch.Tensor, ref: torch.Tensor, return_maps: bool = False):
        """LR, enhanced image (4x LR size) and reference (multiple of 4), all RGB in [0,1] -> SR in [-1,1]."""
        de_f = dict(zip(("lv1", "lv2", "lv3"), self.LTE(de)))
        ref_f = dict(zip(("lv1", "lv2", "lv3"), self.LTE(ref)))
        conf, idx = self.match(de_f["lv3"], ref_f["lv3"])
        h, w = idx.shape[-2:]
        wr = ref_f["lv3"].shape[-1]
        ys = torch.arange(h, device=idx.device).view(1, h, 1)
        xs = torch.arange(w, device=idx.device).view(1, 1, w)
        disp = torch.stack((idx % wr - xs, idx // wr - ys), dim=-1)  # [x, y] at relu3_1
        T = {}
        for name, _, s in self.levels:
            d = upscale_flow(disp, s) if s > 1 else disp
            c = conf.repeat_interleave(s, 2).repeat_interleave(s, 3) if s > 1 else conf
            T[name] = self.transfer[name](ref_f[name], de_f[name], d, c)
        sr = self.MainNet(lr * 2 - 1, torch.ones_like(conf), T["lv3"], T["lv2"], T["lv1"])
        return (sr, conf, idx) if return_maps else sr


# --------------------------------------------------------------------------- model


class DEF(RefSRModel):
    """forward(lr, ref) -> sr in [0,1]: detail enhancement by DDNM, then DCN texture transfer.

    ``denoiser``: any callable ``eps(x_t, t)``; None builds a ``GuidedDiffusionUNet`` from
    ``unet_config`` (default: the 256x256 unconditional guided-diffusion model, 552.8M parameters).
    """

    spec = SPEC

    def __init__(self, denoiser: Callable | None = None, unet_config: dict | None = None, patch: int = 256,
                 num_steps: int = 1000, steps: int | None = None, beta_start: float = 1e-6, beta_end: float = 1e-2,
                 eta: float = 1.0, kernel: str = "pil", timestep_map: str = "index", seed: int = 0,
                 global_projection: bool = True, num_res_blocks: tuple[int, int, int, int] = (16, 16, 8, 4),
                 n_feats: int = 64, groups: int = 8, chunk_elements: int = 2 ** 24):
        super().__init__()
        if denoiser is None:
            denoiser = GuidedDiffusionUNet(**(GUIDED_256_UNCOND if unet_config is None else unet_config))
        if isinstance(denoiser, nn.Module):
            self.denoiser = denoiser
        else:
            self._denoiser_fn = denoiser
        self.enhancer = DetailEnhancer(num_steps, steps, beta_start, beta_end, eta, patch, SPEC.scale, kernel,
                                       timestep_map, seed=seed, global_projection=global_projection)
        self.net_g = DEFTextureNet(num_res_blocks, n_feats, 1.0, groups, chunk_elements)

    def _eps(self) -> Callable:
        return self.denoiser if "denoiser" in self._modules else self._denoiser_fn

    # -- checkpoint hooks (see models/base.py) ---------------------------------------------------
    def checkpoint_modules(self) -> dict[str, nn.Module]:
        mods = {"net_g": self.net_g}
        if "denoiser" in self._modules:
            mods["denoiser"] = self.denoiser
        return mods

    def checkpoint_filter(self, role: str, state_dict: dict) -> dict:
        return state_dict  # the guided-diffusion file is a plain UNetModel state dict

    # -- the two stages --------------------------------------------------------------------------
    @torch.no_grad()
    def enhance(self, lr: torch.Tensor) -> torch.Tensor:
        """Detail-enhanced x4 image (B,3,4h,4w), [0,1] scale, not clamped; A(result) = lr."""
        return self.enhancer(lr, self._eps())

    def transfer(self, lr: torch.Tensor, de: torch.Tensor, ref: torch.Tensor, return_maps: bool = False):
        """Texture network on the (clamped) enhanced image; SR in [0,1], not clamped."""
        ref = ref[..., : ref.shape[-2] // 4 * 4, : ref.shape[-1] // 4 * 4]
        if ref.shape[-1] == 0 or ref.shape[-2] == 0:
            raise ValueError(f"DEF needs a reference of at least 4x4 pixels, got {tuple(ref.shape[-2:])}")
        out = self.net_g(lr, de.clamp(0, 1), ref, return_maps)
        return ((out[0] + 1) / 2, *out[1:]) if return_maps else (out + 1) / 2

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.transfer(lr, self.enhance(lr), ref).clamp(0, 1)


@register_model(SPEC)
def def_(**kwargs) -> DEF:
    return DEF(**kwargs)
