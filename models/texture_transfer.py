"""Training-free texture transfer (our own RefSR baseline; no learned RefSR weights).

Every LR pixel's neighbourhood is matched in pixel space against the reference degraded the same way
as the LR (bicubic ↓scale at every sub-pixel phase), over scaled and rotated copies of the reference
(as SRNTT augments its references); dense matching runs in chunks. The matched reference high
frequencies (reference minus its down-up-sampled copy) are blended in with non-local-means weights
that include a "keep bicubic" hypothesis and are capped by the LR patch's own contrast, so unreliable
matches fade back to bicubic. Iterative back-projection then makes the result consistent with the LR.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import MemoryCost, ModelSpec, RefSRModel
from .registry import register_model

SPEC = ModelSpec(
    name="texture_transfer", scale=4, uses_ref=True, batchable=True, paper="(ours: training-free RefSR baseline)",
    licence="MIT",
    max_ref_side=2560,  # memory allows more; time grows with LR x reference pixels (docs/reliability.md)
    memory=MemoryCost(base_mib=121, per_lr_px=31342, per_ref_px=138),  # scripts/memory_zoo.py --fit
    test_kwargs={"ref_scales": (1.0,), "ref_angles": (), "chunk": 64},
    notes="Our own training-free method, not a published model: sub-pixel patch matching of the LR "
          "against the down-sampled reference (scaled/rotated copies), confidence-weighted transfer "
          "of reference high frequencies with a fall-back-to-bicubic hypothesis, iterative "
          "back-projection. Needs no weights.",
)


def _down(x: torch.Tensor, s: int) -> torch.Tensor:
    """Antialiased bicubic ↓s (torch's PIL-compatible kernel): the degradation that made the LR."""
    return F.interpolate(x, size=(x.shape[-2] // s, x.shape[-1] // s), mode="bicubic",
                         antialias=True, align_corners=False)


def _up(x: torch.Tensor, s: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)


def _descriptors(img: torch.Tensor, k: int) -> torch.Tensor:
    """(B,3,h,w) -> (B, h*w, 3*k*k) patches with each channel's patch mean removed."""
    b, c, h, w = img.shape
    pad = F.pad(img, (k // 2,) * 4, mode="replicate")
    p = F.unfold(pad, k).view(b, c, k * k, h * w)
    p = p - p.mean(dim=2, keepdim=True)
    return p.reshape(b, c * k * k, h * w).transpose(1, 2)


def _channels_last(stack: torch.Tensor) -> torch.Tensor:
    """(P,C,H,W) -> (P,H,W,C) contiguous, for pixel gathers; keeps its (H, W) for :func:`_gather`."""
    return stack.permute(0, 2, 3, 1).contiguous()


def _gather(stack: torch.Tensor, f: torch.Tensor, nh: int, nw: int, step: int, size: int) -> torch.Tensor:
    """Patches (n, C, size*size) of a padded channels-last phase stack (P,H,W,C) at candidates ``f``.

    Candidate ``f = phase*nh*nw + row*nw + col`` has its patch's top-left corner at padded pixel
    (row*step, col*step) of that phase: with padding ``(size - step) // 2`` the patch is centred on
    the candidate's step×step block.
    """
    _, hh, ww, c = stack.shape
    phase, pos = f // (nh * nw), f % (nh * nw)
    top = phase * hh * ww + (pos // nw) * step * ww + (pos % nw) * step
    u = torch.arange(size, device=stack.device)
    lin = top[:, None, None] + (u * ww)[:, None] + u[None, :]
    pix = stack.reshape(-1, c).index_select(0, lin.reshape(-1)).view(f.shape[0], size * size, c)
    return pix.transpose(1, 2)


def coarse_topk(query: torch.Tensor, cand: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Indices (Nq, k) of the candidates with the highest normalised correlation, in chunks.

    Blocks of ``chunk`` queries × ``8 * chunk`` candidates bound the memory of the similarity matrix;
    the result equals the unchunked one (ties aside).
    """
    eps = 1e-4 * cand.shape[1]  # keeps flat candidates from winning on noise
    cand = cand / (cand.pow(2).sum(1, keepdim=True) + eps).sqrt()
    out = []
    for qs in range(0, query.shape[0], chunk):
        q = query[qs:qs + chunk]
        best_v = best_i = None
        for cs in range(0, cand.shape[0], 8 * chunk):
            sim = q @ cand[cs:cs + 8 * chunk].T
            v, i = sim.topk(min(k, sim.shape[1]), dim=1)
            i = i + cs
            if best_v is not None:
                v, j = torch.cat([best_v, v], 1).topk(min(k, best_v.shape[1] + v.shape[1]), dim=1)
                i = torch.cat([best_i, i], 1).gather(1, j)
            best_v, best_i = v, i
        out.append(best_i)
    return torch.cat(out)


class TextureTransfer(RefSRModel):
    """See the module docstring. No weights; the hyper-parameters (intensities on a 0..1 scale):

    - ``patch``: LR patch side used for matching; ``transfer_radius``: transferred patches cover
      (2r+1)×(2r+1) LR pixels and overlap, blended with a Hann window.
    - ``ref_scales`` / ``ref_angles``: reference copies searched (scaled; rotated at full scale).
    - ``coarse_k`` hits per copy from a ``coarse_dims``-dimensional PCA search on the LR grid, each
      refined over every sub-pixel offset within half an LR pixel; ``top_k`` kept over all copies.
    - ``h``: matching tolerance (RMS LR error of a good match); ``fallback``: the "keep bicubic"
      hypothesis competes as a match with squared error ``fallback * h**2``.
    - ``gain``: allowed contrast ratio between LR and reference patch; ``energy``: transferred detail
      is at most this multiple of the LR patch's RMS contrast.
    - ``bp_iters``: back-projection iterations; ``chunk``: queries per block (bounds memory).
    """

    def __init__(self, scale: int = 4, patch: int = 5, ref_scales: tuple[float, ...] = (1.0, 0.75, 0.5),
                 ref_angles: tuple[float, ...] = (-15.0, 15.0), coarse_k: int = 3, coarse_dims: int = 16,
                 top_k: int = 3, transfer_radius: int = 1, h: float = 0.02, fallback: float = 1.0,
                 gain: tuple[float, float] = (0.5, 2.0), energy: float = 1.0, bp_iters: int = 10,
                 chunk: int = 1024):
        super().__init__()
        self.scale, self.patch, self.ref_scales, self.ref_angles = scale, patch, tuple(ref_scales), tuple(ref_angles)
        self.coarse_k, self.coarse_dims, self.top_k, self.rt = coarse_k, coarse_dims, top_k, transfer_radius
        self.h, self.fallback, self.gain, self.energy = h, fallback, gain, energy
        self.bp_iters, self.chunk = bp_iters, chunk

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._one(lr[i:i + 1].float(), ref[i:i + 1].float()) for i in range(lr.shape[0])])

    # -- pieces ---------------------------------------------------------------------------------
    def back_project(self, x: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """Iterative back-projection: pull ``x`` towards ``_down(x) == lr``."""
        for _ in range(self.bp_iters):
            x = x + _up(lr - _down(x, self.scale), self.scale)
        return x

    def _phase_crop(self, ref: torch.Tensor, phase: int) -> torch.Tensor:
        """The largest multiple-of-s crop of ``ref`` starting at pixel (phase // s, phase % s) that
        every phase has: (1, 3, s*nh, s*nw) with nh = H // s - 1, nw = W // s - 1."""
        s = self.scale
        nh, nw = ref.shape[-2] // s - 1, ref.shape[-1] // s - 1
        dy, dx = divmod(phase, s)
        return ref[..., dy:dy + s * nh, dx:dx + s * nw]

    def _phases(self, ref: torch.Tensor) -> torch.Tensor:
        """Down-sampled copies of ``ref`` at every sub-pixel phase: (s*s, 3, nh, nw)."""
        return torch.cat([_down(self._phase_crop(ref, ph), self.scale) for ph in range(self.scale ** 2)])

    def _hf_patches(self, ref: torch.Tensor, low: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """High-frequency patches (n, 3*T*T) of ``ref`` (the reference minus its down-up-sampled copy
        at the candidate's phase) centred on candidates ``f``; one phase in memory at a time."""
        s, rt = self.scale, self.rt
        nh, nw = low.shape[-2:]
        out = ref.new_zeros(f.shape[0], 3 * (s * (2 * rt + 1)) ** 2)
        for ph in range(s * s):
            sel = (f // (nh * nw)) == ph
            if sel.any():
                hf = self._phase_crop(ref, ph) - _up(low[ph:ph + 1], s)
                hf_cl = _channels_last(F.pad(hf, (s * rt,) * 4))
                out[sel] = _gather(hf_cl, f[sel] % (nh * nw), nh, nw, s, s * (2 * rt + 1)).flatten(1)
        return out

    def _match_one_ref(self, q: torch.Tensor, ref: torch.Tensor):
        """Best sub-pixel candidates of one reference copy for every query descriptor.

        Returns distance, gain and flat candidate index (phase*nh*nw + row*nw + col), each (Nq, kc),
        and the copy's phase images from :meth:`_phases`. Candidate descriptors are gathered on the
        fly, so memory grows with the reference's pixels, not with pixels × phases × patch size.
        """
        s, k = self.scale, self.patch
        low = self._phases(ref)
        nh, nw = low.shape[-2:]
        basis = self._pca(q)
        idx0 = coarse_topk(q @ basis, _descriptors(low[:1], k)[0] @ basis, self.coarse_k, self.chunk)
        # sub-pixel refinement: every HR offset in [-s/2, s/2]² around each coarse (phase-0) hit
        off = torch.arange(-(s // 2), s // 2 + 1, device=q.device)
        oy, ox = torch.meshgrid(off, off, indexing="ij")
        yy = ((idx0 // nw) * s)[..., None] + oy.reshape(-1)  # (Nq, kc, O) HR rows of the phase grid
        xx = ((idx0 % nw) * s)[..., None] + ox.reshape(-1)
        yy, xx = yy.clamp(0, s * nh - 1), xx.clamp(0, s * nw - 1)
        flat = (((yy % s) * s + (xx % s)) * (nh * nw) + (yy // s) * nw + (xx // s)).flatten(1)
        low_cl = _channels_last(F.pad(low, (k // 2,) * 4, mode="replicate"))
        d_best, a_best, f_best = [], [], []
        for qs in range(0, q.shape[0], self.chunk):
            qc, fc = q[qs:qs + self.chunk], flat[qs:qs + self.chunk]
            r = _gather(low_cl, fc.reshape(-1), nh, nw, 1, k).view(*fc.shape, 3, k * k)
            r = (r - r.mean(-1, keepdim=True)).flatten(2)  # (n, kc*O, D), as _descriptors
            qr = torch.bmm(r, qc[:, :, None])[..., 0]
            rr = r.pow(2).sum(-1)
            a = (qr / (rr + 1e-8)).clamp(*self.gain)
            d = (qc.pow(2).sum(1, keepdim=True) - 2 * a * qr + a * a * rr) / qc.shape[1]
            d, j = d.view(d.shape[0], idx0.shape[1], -1).min(dim=2)
            j = j + torch.arange(idx0.shape[1], device=q.device) * off.numel() ** 2
            d_best.append(d), a_best.append(a.gather(1, j)), f_best.append(fc.gather(1, j))
        return torch.cat(d_best), torch.cat(a_best), torch.cat(f_best), low

    def _pca(self, q: torch.Tensor) -> torch.Tensor:
        """(D, m) leading principal directions of the query descriptors: a cheaper coarse search."""
        if self.coarse_dims >= q.shape[1]:
            return torch.eye(q.shape[1], device=q.device)
        _, vec = torch.linalg.eigh(q.T @ q)
        return vec[:, -self.coarse_dims:]

    def _augmented_refs(self, ref: torch.Tensor):
        """The reference at every scale in ``ref_scales`` and, at full scale, every ``ref_angles`` rotation."""
        for sc in self.ref_scales:
            if sc == 1.0:
                yield ref
            else:
                size = (max(1, round(ref.shape[-2] * sc)), max(1, round(ref.shape[-1] * sc)))
                yield F.interpolate(ref, size=size, mode="bicubic", antialias=True, align_corners=False)
        for deg in self.ref_angles:
            c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
            theta = torch.tensor([[c, -s * ref.shape[-2] / ref.shape[-1], 0.0],
                                  [s * ref.shape[-1] / ref.shape[-2], c, 0.0]], dtype=ref.dtype,
                                 device=ref.device)[None]
            grid = F.affine_grid(theta, list(ref.shape), align_corners=False)
            yield F.grid_sample(ref, grid, mode="bicubic", padding_mode="reflection", align_corners=False)

    def transferred_detail(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """High frequencies to add to the bicubic upsampling, (1,3,s*h,s*w); zero where unreliable."""
        s, rt = self.scale, self.rt
        h, w = lr.shape[-2:]
        q = _descriptors(lr, self.patch)[0]
        ds, gs, fs, srcs, copies = [], [], [], [], []
        for r in self._augmented_refs(ref):
            if min(r.shape[-2:]) < s * (self.patch + 1):
                continue
            d, a, f, low = self._match_one_ref(q, r)
            ds.append(d), gs.append(a), fs.append(f), copies.append((r, low))
            srcs.append(torch.full_like(f, len(copies) - 1))
        if not ds:
            return lr.new_zeros(1, 3, s * h, s * w)
        d, j = torch.cat(ds, 1).topk(min(self.top_k, sum(x.shape[1] for x in ds)), dim=1, largest=False)
        a, f, src = (torch.cat(x, 1).gather(1, j) for x in (gs, fs, srcs))
        p = lr.new_zeros(*f.shape, 3 * (s * (2 * rt + 1)) ** 2)
        for i, (r, low) in enumerate(copies):
            sel = src == i
            p[sel] = self._hf_patches(r, low, f[sel])
        # the reference may not add more detail than `energy` times the LR patch's own contrast:
        # a flat LR patch matched to a reference patch whose texture vanished in the down-sampling
        # (noise, fine grass) is no evidence for that texture
        q_rms = q.pow(2).mean(1).sqrt()[:, None]
        p_rms = p.pow(2).mean(2).sqrt()
        a = a * (self.energy * q_rms / (p_rms + 1e-8)).clamp(max=1)
        logits = torch.cat([-d / self.h ** 2, torch.full_like(d[:, :1], -self.fallback)], 1)
        wgt = logits.softmax(1)[:, :-1] * a  # the last column is the "keep bicubic" hypothesis
        est = (wgt[..., None] * p).sum(1)  # (Nq, 3*T*T)
        t = s * (2 * rt + 1)
        win = torch.hann_window(t + 2, periodic=False, device=lr.device)[1:-1]
        win = (win[:, None] * win[None, :]).reshape(-1)
        cols = (est.view(-1, 3, t * t) * win).reshape(-1, 3 * t * t).T[None]
        num = F.fold(cols, (s * h, s * w), t, stride=s, padding=s * rt)
        den = F.fold(win[None, :, None].expand(1, -1, h * w), (s * h, s * w), t, stride=s, padding=s * rt)
        return num / den

    def _one(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        x = _up(lr, self.scale) + self.transferred_detail(lr, ref)
        return self.back_project(x, lr).clamp(0, 1)


@register_model(SPEC)
def texture_transfer(**kwargs) -> TextureTransfer:
    return TextureTransfer(**kwargs)
