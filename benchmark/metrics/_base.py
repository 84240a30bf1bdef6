"""The metric interface every family implements, and device helpers.

A metric takes batched images as float tensors ``(B, C, H, W)`` on the 0-255 scale, in the
colour space it declares (``space``: ``"y"`` = one luma channel, ``"rgb"`` = three channels), and
returns one float64 value per image. The protocol decides quantisation, the scored region and
the Y conversion; metrics only compute.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from core.registry import Registry

if TYPE_CHECKING:  # torch is imported when a metric is built or run, not when metrics are listed
    import torch


def _brief(entry) -> dict:
    """A metric's facts without its class (what ``--help`` and the registry index hold)."""
    info = entry.info["info"]
    return {f.name: getattr(info, f.name) for f in fields(info) if f.name != "cls"}


METRICS = Registry("metric", "benchmark.metrics", brief=_brief)


@dataclass(frozen=True)
class MetricInfo:
    """Everything the harness, leaderboards and ``--help`` need to know about a metric, in one place."""

    cls: type
    defaults: dict = field(default_factory=dict)  # constructor keyword arguments
    label: str = ""  # column header, e.g. "PSNR-Y (dB)"
    higher_is_better: bool = True
    needs_reference: bool = True  # full-reference (needs the HR) or no-reference
    decimals: int = 4  # how leaderboards print it
    headline: bool = True  # shown in the headline table
    order: int = 50  # column position in tables (fidelity first, no-reference last)
    summary: str = ""  # one line for --help

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


def register_metric(name: str, cls: type, defaults: dict | None = None, **facts) -> None:
    """Register metric ``name``: an instance is ``cls(name=..., device=..., **defaults)``."""
    METRICS.add(name, cls, info=MetricInfo(cls, dict(defaults or {}), **facts))


class MetricUnavailable(RuntimeError):
    """A metric that cannot produce a real number here (missing package or weights)."""


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Metric(ABC):
    """One image-quality measure. Subclasses set the class attributes and implement ``compute``."""

    name: str = ""
    higher_is_better: bool = True
    space: str = "rgb"
    needs_reference: bool = True
    # ``higher_is_better``/``needs_reference`` are overwritten from the registration (``MetricInfo``)

    def __init__(self, name: str | None = None, device: str | torch.device | None = None):
        import torch

        self.name = name or self.name
        if self.name in METRICS:  # the registered facts are the truth for a registered metric
            info = METRICS.info(self.name)["info"]
            self.higher_is_better, self.needs_reference = info.higher_is_better, info.needs_reference
        self.device = torch.device(device) if device is not None else default_device()

    def available(self) -> tuple[bool, str]:
        """``(True, "")`` or ``(False, "unavailable (<reason>)")``."""
        return True, ""

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor | None = None) -> torch.Tensor:
        import torch

        ok, reason = self.available()
        if not ok:
            raise MetricUnavailable(f"{self.name}: {reason}")
        channels = 1 if self.space == "y" else 3
        for label, x in (("sr", sr), ("hr", hr)):
            if x is None:
                continue
            if x.ndim != 4 or x.shape[1] != channels:
                raise ValueError(f"{self.name} takes {label} as (B, {channels}, H, W) in space "
                                 f"{self.space!r}, got shape {tuple(x.shape)}")
        if self.needs_reference:
            if hr is None:
                raise ValueError(f"{self.name} is full-reference: pass hr")
            if sr.shape != hr.shape:
                raise ValueError(f"{self.name}: sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ")
            hr = hr.to(self.device)
        with torch.no_grad():
            values = self.compute(sr.to(self.device), hr)
        return values.detach().to("cpu", torch.float64)

    @abstractmethod
    def compute(self, sr: torch.Tensor, hr: torch.Tensor | None) -> torch.Tensor:
        """Per-image values ``(B,)`` for inputs already on ``self.device``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={self.device})"
