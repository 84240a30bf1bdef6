"""Device selection and synchronisation, written for CUDA and tested on CPU."""
from __future__ import annotations

import time

import torch


PRECISIONS = {"fp32": None, "tf32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(ValueError):
    """A device that does not exist here, named plainly."""


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; ``cuda``/``cuda:N`` without that GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"--device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name} was asked for, but torch sees no CUDA device here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise DeviceError(f"--device {name!r}: use auto, cpu, cuda or cuda:N")
    return dev


def set_precision(precision: str) -> dict:
    """Make float32 precision explicit: ``fp32`` turns TF32 off for matmuls and cuDNN convolutions
    (torch's CUDA default would use TF32 for convolutions), ``tf32`` turns it on; ``bf16``/``fp16``
    run the forward under autocast (TF32 off for what stays in float32). Returns the flags as set."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    return precision_flags()


def precision_flags() -> dict:
    """The precision switches as torch reports them (recorded in run.json)."""
    return {"cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision()}


def autocast(device: torch.device, precision: str):
    """The forward's autocast context: active for bf16/fp16 only."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so wall-clock timings measure the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ForwardTimer:
    """Times the work between ``with`` entry and exit: CUDA events on the current stream on a GPU
    (the kernels' own time, read after a synchronize), ``time.perf_counter`` on the CPU.
    ``kind`` says which, so timings from the two are not mixed up."""

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "cuda-event" if device.type == "cuda" else "perf_counter"
        self.seconds = float("nan")

    def __enter__(self) -> ForwardTimer:
        synchronize(self.device)  # earlier queued work is not counted
        if self.device.type == "cuda":
            self._start, self._end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
            self._start.record(torch.cuda.current_stream(self.device))
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self._end.record(torch.cuda.current_stream(self.device))
            self._end.synchronize()
            self.seconds = self._start.elapsed_time(self._end) / 1000.0
        else:
            self.seconds = time.perf_counter() - self._t0


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    """Peak allocated memory since the last reset (CUDA); None on CPU, where torch does not track it."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"


def available_memory(device: torch.device | str) -> int | None:
    """Bytes a forward can still allocate: free GPU memory, or the kernel's MemAvailable on a CPU
    (None where neither can be read)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
