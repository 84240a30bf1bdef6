"""Time an SSMTF training step on CPU before and after the differentiable scan and DCN changes, in one run.

    OMP_NUM_THREADS=1 python scripts/ssmtf_train_step_speed.py [--repeat 5] [--batch 4] [--size 64]

Three measurements, each alternating "old" and "new" calls so that both see the same machine load
(median CPU seconds of ``--repeat`` calls after a warm-up; one thread: CPU time is the steadier figure
on a shared machine):

1. the differentiable selective scan, forward + backward of a squared sum, at the shapes SS2D passes
   it in the overfit check (``spec.test_kwargs``: d_inner 64, d_state 4, 4 directions; batch ``--batch``;
   L = (size/4)^2, (size/2)^2, size^2): old = the autograd-differentiated "log" form that
   ``selective_scan_grad`` was before (commit 363fcd8, reproduced below), new = ``selective_scan_grad``;
2. the modulated deformable conv of each scale (channels 256/128/64 at size/4, size/2, size; 2 offset
   groups as in the check), forward + backward: old = torchvision's kernel one offset group at a time,
   new = ``deform_conv2d_sampled``;
3. one training step of the check's net_g (forward on the frozen correspondences, L1, backward), old =
   both old forms patched in, new = the code as it is.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torchvision.ops import deform_conv2d

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models.c2_matching_parts as c2p  # noqa: E402
import models.selective_scan as ss  # noqa: E402


def scan_log_form_autograd(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                           return_last_state=False, max_chunk: int = 64):
    """The baseline: ``selective_scan_grad`` as of commit 363fcd8 (chunks of cumulative log-decays,
    differentiated by autograd)."""
    dtype_in = u.dtype
    dt, u, delta, A, Bg, Cg = ss._prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    batch, dim, L = u.shape
    N = A.shape[1]
    T = ss.chunk_length(delta.detach(), A.detach(), ss._MAX_LOG_SPAN[dt], ss._fit_chunk(L, max_chunk))
    n = -(-L // T)
    pad = n * T - L

    def chunks(x):
        return torch.nn.functional.pad(x, (0, 0, 0, pad)).view(batch, dim, n, T, N)

    Bd = Bg.repeat_interleave(dim // Bg.shape[1], dim=1).transpose(2, 3)
    Cd = Cg.repeat_interleave(dim // Cg.shape[1], dim=1).transpose(2, 3)
    S = chunks(torch.einsum("bdl,dn->bdln", delta, A)).cumsum(3)
    drive = chunks((delta * u)[..., None] * Bd)
    local = drive if T == 1 else torch.exp(S) * torch.cumsum(torch.exp(-S) * drive, 3)
    decay_end = torch.exp(S[:, :, :, -1])
    starts, last = ss._carry(decay_end.movedim(2, -1), local[:, :, :, -1].movedim(2, -1), u.new_zeros(batch, dim, N))
    h = local + torch.exp(S) * starts.movedim(-1, 2)[:, :, :, None]
    y = (h * chunks(Cd)).sum(-1).reshape(batch, dim, n * T)[..., :L]
    out = ss._epilogue(y, u, D, z, dtype_in)
    return (out, last) if return_last_state else out


def dcn_torchvision(x, offset, weight, bias, mask, groups):
    """The baseline: torchvision's kernel one offset group at a time (deform_conv2d_by_group's eval path)."""
    cg, og, mg = x.shape[1] // groups, offset.shape[1] // groups, mask.shape[1] // groups
    out = sum(deform_conv2d(x[:, g * cg:(g + 1) * cg], offset[:, g * og:(g + 1) * og], weight[:, g * cg:(g + 1) * cg],
                            padding=(1, 1), mask=mask[:, g * mg:(g + 1) * mg]) for g in range(groups))
    return out + bias.view(1, -1, 1, 1)


def paired(old, new, repeat: int) -> tuple[float, float]:
    """Median CPU seconds of old() and new(), called alternately after one warm-up each."""
    old(), new()
    t_old, t_new = [], []
    for _ in range(repeat):
        for fn, acc in ((old, t_old), (new, t_new)):
            c = time.process_time()
            fn()
            acc.append(time.process_time() - c)
    return statistics.median(t_old), statistics.median(t_new)


def report(what: str, t_old: float, t_new: float) -> None:
    print(f"{what:<44} old {t_old:7.3f} s | new {t_new:7.3f} s | ratio {t_old / t_new:4.1f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=64, help="HR crop side (the check's 64)")
    a = p.parse_args()
    from benchmark.training.adapters import _c2_correspondence
    from models import create_model, get_spec

    kw = get_spec("ssmtf").test_kwargs
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); check config {kw}; batch {a.batch}, "
          f"HR {a.size}x{a.size}; median CPU s of {a.repeat} alternating calls")
    g = torch.Generator().manual_seed(0)
    d_inner, n_state, k = 2 * kw["ngf"], kw["d_state"], 4
    dim = k * d_inner
    for side in (a.size // 4, a.size // 2, a.size):
        L = side * side
        ins = [torch.randn(a.batch, dim, L, generator=g), 0.5 * torch.randn(a.batch, dim, L, generator=g),
               -torch.arange(1, n_state + 1.0).repeat(dim, 1), torch.randn(a.batch, k, n_state, L, generator=g),
               torch.randn(a.batch, k, n_state, L, generator=g), torch.ones(dim), None, torch.full((dim,), -3.0)]

        def run(fn):
            ts = [t.clone().requires_grad_() if t is not None else None for t in ins]
            return lambda: fn(*ts, delta_softplus=True).square().sum().backward()

        report(f"scan fwd+bwd L={L} (D={dim}, N={n_state})", *paired(run(scan_log_form_autograd),
                                                                      run(ss.selective_scan_grad), a.repeat))
    for ch, side in ((256, a.size // 4), (128, a.size // 2), (64, a.size)):
        groups = kw["groups"]
        ins = [torch.randn(a.batch, ch, side, side, generator=g), 2 * torch.randn(a.batch, 18 * groups, side, side, generator=g),
               0.02 * torch.randn(ch, ch, 3, 3, generator=g), torch.zeros(ch),
               torch.rand(a.batch, 9 * groups, side, side, generator=g)]

        def run(fn):
            ts = [t.clone().requires_grad_() for t in ins]
            return lambda: fn(*ts, groups).square().sum().backward()

        report(f"DCN fwd+bwd {ch} ch at {side}x{side}, {groups} groups", *paired(run(dcn_torchvision),
                                                                            run(c2p.deform_conv2d_sampled), a.repeat))
    torch.manual_seed(0)
    model = create_model("ssmtf", **kw).train()
    lr, ref = torch.rand(a.batch, 3, a.size // 4, a.size // 4), torch.rand(a.batch, 3, a.size, a.size)
    hr = torch.rand(a.batch, 3, a.size, a.size)
    corr = _c2_correspondence(model, lr, ref)

    def step():
        model.zero_grad()
        (model.restore(lr, *corr) - hr).abs().mean().backward()

    def step_old():
        new_scan, new_dcn = ss.selective_scan_grad, c2p.deform_conv2d_sampled
        ss.selective_scan_grad, c2p.deform_conv2d_sampled = scan_log_form_autograd, dcn_torchvision
        try:
            step()
        finally:
            ss.selective_scan_grad, c2p.deform_conv2d_sampled = new_scan, new_dcn

    report("net_g training step (forward + L1 + backward)", *paired(step_old, step, a.repeat))


if __name__ == "__main__":
    main()
