"""Model profiles: parameters, FLOPs, runtime and peak memory at declared input sizes.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-add), plus
formulas for two ops it does not count: ``torchvision::deform_conv2d`` (the convolution's
multiply-adds at the sampled positions; the bilinear sampling itself is not counted, as for the
other ops FlopCounterMode skips: interpolation, softmax, element-wise) and the CPU kernel of
``scaled_dot_product_attention`` (its two matrix products, as FlopCounterMode counts the CUDA kernels
and as the math path on the meta device is counted). GMACs = GFLOPs / 2.
Runtime: warm-up runs, then N timed runs (CUDA events on a GPU, ``perf_counter`` on the CPU: see
``runtime_timer``), median and spread. Peak memory is the forward's own extra memory, measured
differently per device and labelled so (``peak_memory_measure``): on a GPU the allocator's peak of
tensor memory above what was allocated before the runs; on the CPU the growth of the resident set
high-water mark over one forward in a fresh process (tensors plus allocator and library overhead).
"""
from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula, sdpa_flop_count

from .device import ForwardTimer, peak_memory_bytes, reset_peak_memory

FLOP_UNIT = "FLOPs (2 per multiply-add, FlopCounterMode convention)"
CUDA_PEAK = "cuda: torch.cuda.max_memory_allocated above the allocation before the runs (tensors)"
CPU_PEAK = "cpu: VmHWM growth over one forward in a fresh process (resident set, incl. allocator overhead)"
CPU_PEAK_FALLBACK = "cpu: ru_maxrss growth over one forward in a fresh process (resident set)"


_registered = False


def _register_formulas() -> None:
    global _registered
    if _registered:
        return
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)

    register_flop_formula(torch.ops.torchvision.deform_conv2d, get_raw=True)(_deform_conv2d_flops_raw)
    register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu)(_sdpa_cpu_flops)
    _registered = True


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """QK^T and attention x V multiply-adds, x2 (FlopCounterMode's formula for the CUDA kernels)."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _deform_conv2d_flops_raw(input, weight, *args, out_val=None, **kwargs):
    """Multiply-adds of a deformable conv = those of a conv with the same output size; ×2 for FLOPs."""
    b, c_out, h_out, w_out = out_val.shape
    _, c_in_per_group, kh, kw = weight.shape
    return 2 * b * c_out * h_out * w_out * c_in_per_group * kh * kw


@dataclass
class Profile:
    model: str
    lr_size: str
    ref_size: str
    params_total: int
    params_trainable: int
    gflops: float
    gmacs: float
    runtime_median_s: float
    runtime_min_s: float
    runtime_max_s: float
    runs: int
    peak_memory_mb: float | None
    device: str
    flop_unit: str = FLOP_UNIT
    runtime_timer: str = ""  # cuda-event | perf_counter
    peak_memory_measure: str = ""  # how peak_memory_mb was measured (differs between CPU and GPU)

    def as_dict(self) -> dict:
        return asdict(self)


def count_params(model: torch.nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def count_flops(model: torch.nn.Module, lr: torch.Tensor, ref: torch.Tensor) -> int:
    _register_formulas()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(lr, ref)
    return int(counter.get_total_flops())


def count_on_meta(name: str, lr_hw, ref_hw, model_kwargs: dict | None = None) -> tuple[int, int]:
    """(parameters, FLOPs) of one forward on the meta device: shapes only, nothing is computed or
    allocated, so sizes too large or slow to run can be counted. Same counter as :func:`count_flops`;
    a model whose FLOPs depend on values (none in the zoo: ``tests/test_profile_meta.py`` checks the
    counts agree with a real forward) would need a real run."""
    from models import create_model

    with torch.device("meta"):
        model = create_model(name, **(model_kwargs or {})).eval()
        flops = count_flops(model, torch.rand(1, 3, *lr_hw), torch.rand(1, 3, *ref_hw))
    return count_params(model)[0], flops


def time_forward(model: torch.nn.Module, lr: torch.Tensor, ref: torch.Tensor, device: torch.device,
                 warmup: int = 1, runs: int = 5) -> list[float]:
    times = []
    with torch.no_grad():
        for i in range(warmup + runs):
            with ForwardTimer(device) as timer:
                model(lr, ref)
            if i >= warmup:
                times.append(timer.seconds)
    return times


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _cpu_peak_child(name: str, kwargs: dict, lr_shape, ref_shape, queue) -> None:
    from models import create_model

    torch.set_num_threads(1)
    model = create_model(name, **kwargs).eval()
    lr, ref = torch.rand(lr_shape), torch.rand(ref_shape)
    try:  # Linux: reset the high-water mark, so it measures this forward only
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _rss_kib("VmRSS")
        with torch.no_grad():
            model(lr, ref)
        queue.put(((_rss_kib("VmHWM") - before) / 1024.0, CPU_PEAK))
    except OSError:  # elsewhere: the monotonic peak of the whole process
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with torch.no_grad():
            model(lr, ref)
        queue.put(((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0, CPU_PEAK_FALLBACK))


def cpu_peak_memory_mb(name: str, kwargs: dict, lr_shape, ref_shape) -> tuple[float | None, str]:
    """Extra resident memory (MB) of one forward, measured in a fresh process, and how it was measured."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_cpu_peak_child, args=(name, kwargs, lr_shape, ref_shape, queue))
    proc.start()
    proc.join()
    return queue.get() if proc.exitcode == 0 and not queue.empty() else (None, "")


def profile_model(name: str, device: torch.device, lr_hw=(128, 128), ref_hw=(512, 512), warmup: int = 1,
                  runs: int = 5, model_kwargs: dict | None = None, measure_memory: bool = True) -> Profile:
    """Profile a registered model with random weights (timing and FLOPs do not depend on weights)."""
    from models import create_model

    model_kwargs = model_kwargs or {}
    model = create_model(name, **model_kwargs).eval().to(device)
    lr = torch.rand(1, 3, *lr_hw, device=device)
    ref = torch.rand(1, 3, *ref_hw, device=device)
    total, trainable = count_params(model)
    flops = count_flops(model, lr, ref)
    reset_peak_memory(device)
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    times = time_forward(model, lr, ref, device, warmup=warmup, runs=runs)
    peak, measure = None, ""
    if device.type == "cuda":
        peak, measure = (peak_memory_bytes(device) - before) / 2**20, CUDA_PEAK
    elif measure_memory:
        peak, measure = cpu_peak_memory_mb(name, model_kwargs, tuple(lr.shape), tuple(ref.shape))
    return Profile(model=name, lr_size=f"{lr_hw[0]}x{lr_hw[1]}", ref_size=f"{ref_hw[0]}x{ref_hw[1]}",
                   params_total=total, params_trainable=trainable, gflops=flops / 1e9, gmacs=flops / 2e9,
                   runtime_median_s=statistics.median(times), runtime_min_s=min(times), runtime_max_s=max(times),
                   runs=runs, peak_memory_mb=peak, device=device.type, peak_memory_measure=measure,
                   runtime_timer=ForwardTimer(device).kind)
