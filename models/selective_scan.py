"""Mamba's selective scan in pure PyTorch, computed as a chunked parallel scan.

The operation (mamba-ssm's ``selective_scan_fn`` / ``selective_scan_ref`` contract, real case)::

    delta = softplus(delta + delta_bias)            # if delta_softplus (bias optional)
    h_t   = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t      (per channel d and state n)
    y_t   = <C_t, h_t> + D * u_t,   out = y * silu(z)             (D, z optional)

with ``u, delta, z``: (batch, D, L); ``A``: (D, N); ``B``/``C``: (D, N) (fixed), (batch, N, L)
(shared by every channel) or (batch, G, N, L) (grouped: channel d uses group d // (D // G), as
VMamba/SS2D passes its four scan directions); ``D``: (D,); ``delta_bias``: (D,).

:func:`selective_scan_chunked` never loops over time steps. The sequence is cut into chunks of
``T`` steps (the longest power of two up to 128 that pads ``L`` by at most an eighth), laid out
time-major so that one step is a contiguous row of D*N states ordered (group, state, channel):
the channel is innermost, so the broadcasts (delta over states, B and C over a group's channels)
run along long contiguous rows, which measured several times faster on CPU than a (channel,
state) order whose 16-long inner rows defeat vectorisation. Inside a chunk, with ``S_t`` the
cumulative log-decay since the chunk start
(``A`` times a cumulative sum of ``delta``), the recurrence is solved in closed form::

    h_t = exp(S_t) * (h_0 + sum_{s<=t} exp(-S_s) * delta_s B_s u_s)          ("log" form)

``exp(-S_s)`` grows with the decay accumulated inside the chunk, so ``T`` is chosen per call such
that the largest possible within-chunk decay ``T * max_d(max_t delta * max_n |A|)`` stays below
``max_log_span`` (40 e-folds in float32, 300 in float64): every exponential stays far inside the
floating-point range and the rounding of ``S`` (relative error ~ eps * span) stays small. Fast
decays therefore force short chunks (the parity fixture's weights reach tens of e-folds per step
in some channels, official-init-like inputs several). The default ("doubling") form avoids the
range problem altogether: within a chunk the pairs (decay, input) are combined by an associative
parallel prefix scan (products of decays <= 1, never an exponential of a sum), exact for any
rate, and on CPU it measured faster than the log form even where the latter gets 128-step chunks.
Both prefix computations run in place as an up-sweep and a down-sweep over strided views of
whole rows (2 log2(T) vectorised steps). The state is then carried from chunk to chunk by the
same kind of scan over the chunks of a block. Chunks are processed in blocks of about
``block_elems`` state values (a short Python loop over blocks, each carrying its final state to
the next) so memory stays bounded at any ``L`` and the two block buffers, allocated once per
call and reused by every block, stay cache-sized; the per-step reference materialises four
(batch, D, L, N) tensors. ``<C_t, h_t>`` is one batched matmul per block.

:func:`selective_scan` dispatches: mamba-ssm's CUDA kernel when the package is importable and
the tensors are on CUDA, else the chunked scan, or, when a gradient is needed (training),
:func:`selective_scan_grad` (the chunked scan works in place and has no backward): the doubling
form keeping every state, with a hand-written backward that runs the same scan from the end on the
states' gradients (as mamba-ssm's kernel does); :data:`LAST_BACKEND` and the ``backend`` return of
:func:`scan_backend` record which one ran. :func:`selective_scan_ref` is the definition as a
per-step loop in mamba-ssm's formulation (the baseline of ``scripts/selective_scan_speed.py``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: which implementation the last :func:`selective_scan` call used: "mamba_ssm", "chunked", "grad" or "ref".
LAST_BACKEND: str | None = None

_MAX_LOG_SPAN = {torch.float32: 40.0, torch.float64: 300.0}


def _mamba_ssm_fn():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # not installed, or installed without its compiled kernel
        return None
    return selective_scan_fn


def scan_backend(device: torch.device | str, needs_grad: bool = False) -> str:
    """The backend :func:`selective_scan` uses for tensors on ``device`` (``needs_grad``: autograd
    must reach the inputs; mamba-ssm's kernel has a backward, the chunked scan does not)."""
    if torch.device(device).type == "cuda" and _mamba_ssm_fn() is not None:
        return "mamba_ssm"
    return "grad" if needs_grad else "chunked"


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend: str = "auto"):
    """mamba-ssm's ``selective_scan_fn`` where available (CUDA), else :func:`selective_scan_chunked`.

    ``backend``: "auto", "chunked", "grad" (differentiable), "mamba_ssm" or "ref" (the per-step loop).
    """
    global LAST_BACKEND
    if backend == "auto":
        needs_grad = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (u, delta, A, B, C, D, z, delta_bias))
        backend = scan_backend(u.device, needs_grad)
    if backend == "mamba_ssm":
        fn = _mamba_ssm_fn()
        if fn is None:
            raise RuntimeError("backend 'mamba_ssm' requested but mamba_ssm is not importable")
        out = fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    elif backend == "chunked":
        out = selective_scan_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                     return_last_state)
    elif backend == "grad":
        out = selective_scan_grad(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    elif backend == "ref":
        out = selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    else:
        raise ValueError(f"unknown selective-scan backend {backend!r}")
    LAST_BACKEND = backend
    return out


# ----------------------------------------------------------------------------- shared prologue
def _prepare(u, delta, A, B, C, delta_bias, delta_softplus):
    """Compute dtype, softplus'd delta and B/C as (batch, G, N, L) views (G = 1 when shared)."""
    if A.is_complex():
        raise NotImplementedError("complex A (S4D-Lin) is not supported; SS2D uses real A")
    dt = torch.float64 if u.dtype == torch.float64 else torch.float32
    u = u.to(dt)
    delta = delta.to(dt)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dt)[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, L = u.shape

    def as_groups(M):
        M = M.to(dt)
        if M.dim() == 2:  # (D, N): fixed per channel -> one group per channel
            return M.t()[None, :, :, None].expand(batch, M.shape[1], M.shape[0], L).permute(0, 2, 1, 3)
        if M.dim() == 3:  # (batch, N, L)
            return M[:, None]
        if M.dim() == 4:
            if dim % M.shape[1]:
                raise ValueError(f"{dim} channels do not split into {M.shape[1]} groups")
            return M
        raise ValueError(f"B/C must have 2, 3 or 4 dims, got shape {tuple(M.shape)}")

    return dt, u, delta, A.to(dt), as_groups(B), as_groups(C)


def _epilogue(y, u, D, z, dtype_in):
    if D is not None:
        y = y + u * D.to(y.dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(dtype_in)


# ----------------------------------------------------------------------------- per-step reference
def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """The recurrence stepped one time step at a time (the definition; slow)."""
    dtype_in = u.dtype
    dt, u, delta, A, Bg, Cg = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    batch, dim, L = u.shape
    G, N = Bg.shape[1], A.shape[1]
    # the formulation of mamba-ssm's reference (same einsums, same (batch, D, L, N) layout):
    # a time step is one [:, :, t] slice; groups are expanded to channels
    Bd = Bg.repeat_interleave(dim // G, dim=1)
    Cd = Cg.repeat_interleave(dim // Cg.shape[1], dim=1)
    decay = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    drive = torch.einsum("bdl,bdnl,bdl->bdln", delta, Bd, u)
    h = u.new_zeros(batch, dim, N)
    ys = []
    for t in range(L):
        h = decay[:, :, t] * h + drive[:, :, t]
        ys.append(torch.einsum("bdn,bdn->bd", h, Cd[:, :, :, t]))
    y = torch.stack(ys, dim=-1) if ys else u.new_zeros(batch, dim, 0)
    out = _epilogue(y, u, D, z, dtype_in)
    return (out, h) if return_last_state else out


# ----------------------------------------------------------------------------- differentiable scan
def selective_scan_grad(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                        return_last_state=False, max_chunk: int = 64):
    """Same result as :func:`selective_scan_ref`, differentiable (training without mamba-ssm).

    The recurrence and its adjoint are :class:`_StateScan`, an autograd function with a hand-written
    backward (as mamba-ssm's kernel has): the forward runs the "doubling" form of the module doc on
    chunks of ``max_chunk`` steps and keeps the states h_t; the backward is the same scan run backwards
    in time on dL/dh, followed by contractions for the gradients of u, delta, A, B and C. The prologue
    (delta_bias, softplus) and the epilogue (D, z) are ordinary autograd ops. Memory: the states, one
    (batch, D, L, N) tensor, plus the backward's temporaries of that size."""
    dtype_in = u.dtype
    dt, u, delta, A, Bg, Cg = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    dim = u.shape[1]
    if Bg.shape[1] != Cg.shape[1]:  # different grouping of B and C: expand both to channels
        Bg = Bg.repeat_interleave(dim // Bg.shape[1], dim=1)
        Cg = Cg.repeat_interleave(dim // Cg.shape[1], dim=1)
    y, last = _StateScan.apply(u, delta, A, Bg, Cg, _fit_chunk(u.shape[-1], max_chunk))
    out = _epilogue(y, u, D, z, dtype_in)
    return (out, last) if return_last_state else out


def _time_major(x: torch.Tensor, T: int, n_chunks: int, shape: tuple) -> torch.Tensor:
    """(batch, C, L) or (batch, G, N, L) -> contiguous (batch, n_chunks, T, *shape), zero-padded in time."""
    x = x.movedim(-1, 1)
    x = F.pad(x, (0, 0) * (x.dim() - 2) + (0, n_chunks * T - x.shape[1]))
    return x.contiguous().view(x.shape[0], n_chunks, T, *shape)


def _scan_states_(E: torch.Tensor, P: torch.Tensor, reverse: bool = False) -> None:
    """In place on (batch, chunks, T, ...): P_t <- E_t * P_{t-1} + P_t over the flattened time
    (chunk, step), from a zero state; E is overwritten. Prefix scans inside every chunk at once
    (:func:`_prefix_scan`), then the chunk-to-chunk carry (:func:`_carry`). ``reverse``: from the
    end, P_t <- E_t * P_{t+1} + P_t."""
    _prefix_scan(P, E, reverse)  # E_t = decay to the chunk's start (end), P_t = state built from 0 in it
    edge = 0 if reverse else -1
    E_end, P_end = E[:, :, edge].movedim(1, -1), P[:, :, edge].movedim(1, -1)
    if reverse:
        E_end, P_end = E_end.flip(-1), P_end.flip(-1)
    starts, _ = _carry(E_end, P_end, P.new_zeros(P_end.shape[:-1]))
    if reverse:
        starts = starts.flip(-1)
    P.addcmul_(E, starts.movedim(-1, 1)[:, :, None])


class _StateScan(torch.autograd.Function):
    """y_t = <C_t, h_t>, h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t (h_{-1} = 0), and the final state.

    u, delta (batch, D, L) (delta already bias-added and softplus'd); A (D, N); Bg, Cg (batch, G, N, L)
    with G groups of H = D / G channels. Internally time-major (batch, chunk, T, G, N, H), channel
    innermost, as :func:`selective_scan_chunked`. Backward, with g_t = dL/dh_t in total:
    g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1} (the same scan, time reversed), then
    du = delta sum_n g B, d delta = u sum_n g B + sum_n A g (h_t - b_t), dA = sum g (h_t - b_t) delta,
    dB = sum_h g delta u, dC = sum_h dy h, where b_t = delta_t B_t u_t (so h_t - b_t = a_t h_{t-1})."""

    @staticmethod
    def forward(ctx, u, delta, A, Bg, Cg, T):
        batch, dim, L = u.shape
        G, N = Bg.shape[1], A.shape[1]
        H = dim // G
        n = -(-L // T)
        d_t = _time_major(delta, T, n, (G, 1, H))  # padded steps: no decay (delta 0), no input
        du_t = _time_major(delta * u, T, n, (G, 1, H))
        B_t = _time_major(Bg, T, n, (G, N, 1))
        C_t = _time_major(Cg, T, n, (G, N)).unsqueeze(-2)  # (batch, n, T, G, 1, N)
        Ag = A.view(G, H, N).transpose(1, 2).contiguous()  # (G, N, H)
        E = torch.mul(d_t, Ag).exp_()
        h = torch.mul(du_t, B_t)
        _scan_states_(E, h)
        y = torch.matmul(C_t, h).view(batch, n * T, dim)[:, :L].transpose(1, 2)
        last = h.view(batch, n * T, G, N, H)[:, L - 1].transpose(-1, -2).reshape(batch, dim, N)
        ctx.save_for_backward(u, delta, A, Bg, Cg, h)
        ctx.T = T
        return y.contiguous(), last

    @staticmethod
    def backward(ctx, gy, glast):
        u, delta, A, Bg, Cg, h = ctx.saved_tensors
        T = ctx.T
        batch, dim, L = u.shape
        G, N = Bg.shape[1], A.shape[1]
        H = dim // G
        n = -(-L // T)
        Lp = n * T
        d_t = _time_major(delta, T, n, (G, 1, H))
        u_t = _time_major(u, T, n, (G, 1, H))
        B_t = _time_major(Bg, T, n, (G, N, 1))
        C_t = _time_major(Cg, T, n, (G, N, 1))
        gy_t = _time_major(gy, T, n, (G, 1, H))
        Ag = A.view(G, H, N).transpose(1, 2).contiguous()
        # adjoint, scanned from the end: g_t = C_t dy_t + a_{t+1} g_{t+1} (+ the final state's gradient)
        g = torch.mul(C_t, gy_t)
        if glast is not None:
            g.view(batch, Lp, G, N, H)[:, L - 1] += glast.view(batch, G, H, N).transpose(-1, -2)
        E = torch.empty_like(g)
        Ev = E.view(batch, Lp, G, N, H)
        torch.mul(d_t.view(batch, Lp, G, 1, H)[:, 1:], Ag, out=Ev[:, :-1]).exp_()  # a_{t+1}
        Ev[:, -1] = 0
        _scan_states_(E, g, reverse=True)  # g_t = dL/dh_t
        du_t = d_t * u_t
        gB = torch.matmul(g, du_t.transpose(-1, -2))  # sum over the group's channels: (batch, n, T, G, N, 1)
        gC = torch.matmul(h, gy_t.transpose(-1, -2))
        # W = g (h_t - b_t) = g a_t h_{t-1}: the gradient of the log-decay delta_t A
        W = torch.addcmul(h, B_t, du_t, value=-1, out=E).mul_(g)  # (E's buffer reused)
        sGB = torch.zeros_like(gy_t)  # sum_n g B, (batch, n, T, G, 1, H)
        gdelta = torch.zeros_like(gy_t)  # sum_n A W
        for k in range(N):  # N passes over 1/N of the states each: no (batch, D, L, N) temporaries
            sGB.addcmul_(g[..., k:k + 1, :], B_t[..., k:k + 1, :])
            gdelta.addcmul_(W[..., k:k + 1, :], Ag[:, k:k + 1])
        gdelta.addcmul_(sGB, u_t)
        gA = W.mul_(d_t).sum((0, 1, 2))  # (G, N, H)
        gu = (sGB * d_t).view(batch, Lp, dim)[:, :L].transpose(1, 2)
        gdelta = gdelta.view(batch, Lp, dim)[:, :L].transpose(1, 2)
        gA = gA.transpose(1, 2).reshape(dim, N)

        def groups_back(x):  # (batch, n, T, G, N, 1) -> (batch, G, N, L)
            return x.view(batch, Lp, G, N)[:, :L].permute(0, 2, 3, 1)

        return gu, gdelta, gA, groups_back(gB), groups_back(gC), None


# ----------------------------------------------------------------------------- chunked scan
def chunk_length(delta: torch.Tensor, A: torch.Tensor, max_log_span: float, max_chunk: int = 128) -> int:
    """Largest power of two ``T <= max_chunk`` with ``T * max(delta) * max|A| <= max_log_span``."""
    if not delta.numel():
        return 2 ** int(math.floor(math.log2(max_chunk)))
    # fastest decay per channel: max over batch and time of delta, times max over states of |A|
    per_channel = delta.reshape(-1, delta.shape[-2], delta.shape[-1]).amax(dim=(0, 2)).clamp_min(0)
    rate = float((per_channel * A.abs().amax(dim=1)).max())
    if rate * max_chunk <= max_log_span:
        return 2 ** int(math.floor(math.log2(max_chunk)))
    if rate * 2 > max_log_span:
        return 1
    return 2 ** int(math.floor(math.log2(max_log_span / rate)))


def scan_plan(delta: torch.Tensor, A: torch.Tensor, max_log_span: float, max_chunk: int = 128,
              method: str = "auto") -> tuple[str, int]:
    """(method, chunk length) :func:`selective_scan_chunked` uses for this softplus'd ``delta``.

    The chunk length is at most the longest power of two that pads the sequence by at most an
    eighth (192 steps: 64, not 128 with a half-padded second chunk), and for the "log" form short enough to keep its exponentials
    in range (:func:`chunk_length`)."""
    max_chunk = _fit_chunk(delta.shape[-1], max_chunk)
    if method == "auto":  # measured faster on CPU in every regime (scripts/selective_scan_speed.py)
        method = "doubling"
    if method == "doubling":
        return method, max_chunk
    if method != "log":
        raise ValueError(f"unknown method {method!r}")
    return method, chunk_length(delta, A, max_log_span, max_chunk)


def _fit_chunk(L: int, max_chunk: int) -> int:
    """The longest power-of-two chunk <= ``max_chunk`` that pads ``L`` by at most an eighth."""
    T = 2 ** int(math.floor(math.log2(max(1, max_chunk))))
    while T > 1 and -(-L // T) * T - L > L / 8:
        T //= 2
    return T


def _prefix_scan(P: torch.Tensor, E: torch.Tensor | None, reverse: bool = False) -> None:
    """In place along dim 2 (length T, a power of two): P_t <- sum over s <= t of
    (prod of E over s < r <= t) * P_s, and E_t <- prod of E over r <= t (plain prefix sums when
    ``E`` is None). Work-efficient parallel scan (up-sweep, then down-sweep) on strided views whose
    elements are whole contiguous rows: 2 log2(T) vectorised steps, no loop over time steps.
    ``reverse``: the same from the end (suffix scan): P_t <- sum over s >= t of
    (prod of E over t <= r < s) * P_s, E_t <- prod of E over r >= t (index t mirrored to T-1-t)."""
    T = P.shape[2]
    blocks = {"all": slice(None), "later": slice(1, None), "earlier": slice(None, -1)}
    mirror = {"all": "all", "later": "earlier", "earlier": "later"}

    def step(s: int, dst: tuple, src: tuple) -> None:
        """dst <- dst + E[dst] * src (and E[dst] *= E[src]); (blocks, position) in blocks of 2s."""
        if reverse:
            dst, src = ((mirror[b], 2 * s - 1 - j) for b, j in (dst, src))
        dst, src = ((slice(None), slice(None), blocks[b], j) for b, j in (dst, src))
        Pv = P.unflatten(2, (T // (2 * s), 2 * s))
        if E is None:
            Pv[dst].add_(Pv[src])
            return
        Ev = E.unflatten(2, (T // (2 * s), 2 * s))
        Pv[dst].addcmul_(Ev[dst], Pv[src])
        Ev[dst].mul_(Ev[src])

    s = 1
    while s < T:  # up-sweep: the last step of every block of 2s holds the block's total
        step(s, ("all", 2 * s - 1), ("all", s - 1))
        s *= 2
    s = T // 4
    while s >= 1:  # down-sweep: the middle of each block gets the total of everything before it
        step(s, ("later", s - 1), ("earlier", 2 * s - 1))
        s //= 2


def _carry(decay: torch.Tensor, local_end: torch.Tensor, state: torch.Tensor):
    """States entering each chunk (last dim) and the state after the last one.

    ``decay``/``local_end``: each chunk's total decay and the state it builds from zero. The
    chunk-level recurrence s_i = decay_i * s_{i-1} + local_end_i is scanned by doubling
    (log2(chunks) vectorised Hillis-Steele steps) instead of a loop over chunks.
    """
    n = decay.shape[-1]
    acc = local_end.clone()
    acc[..., 0] += decay[..., 0] * state
    dec = decay.clone()
    k = 1
    while k < n:
        acc_new = acc.clone()
        acc_new[..., k:] += dec[..., k:] * acc[..., :-k]
        dec_new = dec.clone()
        dec_new[..., k:] *= dec[..., :-k]
        acc, dec = acc_new, dec_new
        k *= 2
    starts = torch.cat((state[..., None], acc[..., :-1]), -1)
    return starts, acc[..., -1]


def selective_scan_chunked(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                           return_last_state=False, max_chunk: int = 128,
                           max_log_span: float | None = None, block_elems: int = 1 << 18,
                           method: str = "auto"):
    """Same result as :func:`selective_scan_ref`, without a loop over time steps (see module doc).

    ``max_chunk`` caps the chunk length; ``max_log_span`` bounds the decay accumulated inside a
    chunk ("log" form); ``block_elems`` bounds the size of the intermediates.
    ``method``: "log" (cumulative log-decays, chunk length from :func:`chunk_length`) or
    "doubling" (prefix products inside chunks: no exponential of a sum, any decay rate);
    "auto" = "doubling", which measured faster on CPU even where the log form can use long chunks.
    """
    dtype_in = u.dtype
    dt, u, delta, A, Bg, Cg = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    batch, dim, L = u.shape
    N = A.shape[1]
    G = Bg.shape[1]
    if Cg.shape[1] != G:  # different grouping of B and C: expand both to channels
        Bg = Bg.repeat_interleave(dim // G, dim=1)
        Cg = Cg.repeat_interleave(dim // Cg.shape[1], dim=1)
        G = dim
    H = dim // G
    span = _MAX_LOG_SPAN[dt] if max_log_span is None else max_log_span
    method, T = scan_plan(delta, A, span, max_chunk, method)
    n_chunks = -(-L // T)
    pad = n_chunks * T - L
    # time-major layout (batch, chunk, T, G, N, H): one time step is a contiguous row of G*N*H
    # states with the channel innermost, so the sweeps act on whole rows and every broadcast
    # (delta over states, B and C over the channels of a group) runs along a long contiguous
    # inner dimension; padded steps have no decay and no input
    # (F.pad returns its input unchanged when pad == 0: made contiguous explicitly, since a
    # strided inner dimension would turn every broadcast below into a gather)
    d_t = F.pad(delta.transpose(1, 2), (0, 0, 0, pad)).contiguous()
    du_t = F.pad((delta * u).transpose(1, 2), (0, 0, 0, pad)).contiguous()
    B_t = F.pad(Bg.permute(0, 3, 1, 2), (0, 0, 0, 0, 0, pad)).contiguous()
    C_t = F.pad(Cg.permute(0, 3, 1, 2), (0, 0, 0, 0, 0, pad)).contiguous()
    dc = d_t.reshape(batch, n_chunks, T, G, 1, H)
    duc = du_t.reshape(batch, n_chunks, T, G, 1, H)
    Bc = B_t.reshape(batch, n_chunks, T, G, N, 1)
    Cc = C_t.reshape(batch, n_chunks, T, G, 1, N)
    Ag = A.view(G, H, N).transpose(1, 2).contiguous()
    if method == "log":  # cumulative delta inside each chunk (times A: the log-decay)
        dc = dc.clone()
        _prefix_scan(dc, None)

    y = u.new_empty(batch, n_chunks, T, G, 1, H)
    state = u.new_zeros(batch, G, N, H)
    per_block = max(1, min(n_chunks, block_elems // max(1, batch * dim * N * T)))
    E_buf = u.new_empty(batch, per_block, T, G, N, H)  # reused by every block: no allocation per block
    P_buf = torch.empty_like(E_buf)
    for c0 in range(0, n_chunks, per_block):
        sl = slice(c0, min(n_chunks, c0 + per_block))
        k = sl.stop - sl.start
        E, P = E_buf[:, :k], P_buf[:, :k]
        torch.mul(dc[:, sl], Ag, out=E)
        if method == "log":
            # S_t = log-decay since the chunk start; the clamp is a no-op unless T == 1 and one
            # step decays by more than exp(-span): exp(-span) then stands for a smaller factor,
            # a change below the working precision (exp(-40) ~ 4e-18)
            E.clamp_(-span, span).exp_()
            torch.mul(duc[:, sl], Bc[:, sl], out=P).div_(E)  # exp(-S_s) b_s ...
            _prefix_scan(P, None)                             # ... summed over s <= t
            E_end = E[:, :, -1]
            H_end = E_end * P[:, :, -1]             # chunk decay and the state it builds from 0
        else:
            E.exp_()                                 # step decays
            torch.mul(duc[:, sl], Bc[:, sl], out=P)  # step inputs
            _prefix_scan(P, E)                       # E_t = decay since chunk start, P_t = state from 0
            E_end, H_end = E[:, :, -1], P[:, :, -1]
        starts, state = _carry(E_end.movedim(1, -1), H_end.movedim(1, -1), state)
        starts = starts.movedim(-1, 1)[:, :, None]  # state entering each chunk
        if method == "log":
            P += starts
            P *= E                                  # h_t = exp(S_t) (h_0 + P_t)
        else:
            P.addcmul_(E, starts)                   # h_t = local state + decay * h_0
        torch.matmul(Cc[:, sl], P, out=y[:, sl])    # <C_t, h_t> for every channel of the group
    y = y.view(batch, n_chunks * T, dim)[:, :L].transpose(1, 2)
    out = _epilogue(y, u, D, z, dtype_in)
    return (out, state.transpose(-1, -2).reshape(batch, dim, N)) if return_last_state else out
