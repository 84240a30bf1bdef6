"""Metric registry: ``create_metric(name)`` from one table of metric defaults (pyiqa-style).

Every entry is a metric class plus its default keyword arguments; ``create_metric`` merges the
caller's overrides (e.g. a protocol's ``metric_options``) over them and nothing else: no metric
is special-cased by name. Metrics take ``(B, C, H, W)`` float tensors on the 0-255 scale in the
colour space they declare and return one float64 value per image (see :mod:`.base`).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from .base import Metric, MetricUnavailable, default_device
from .fidelity import PSNR, SSIM
from .iqa import PyiqaMetric
from .perceptual import LPIPS


@dataclass(frozen=True)
class MetricEntry:
    cls: type[Metric]
    defaults: dict = field(default_factory=dict)
    summary: str = ""


METRICS: dict[str, MetricEntry] = {
    "psnr_y": MetricEntry(PSNR, {"space": "y"}, "PSNR (dB) on the protocol's Y channel"),
    "ssim_y": MetricEntry(SSIM, {"space": "y", "window": 11, "sigma": 1.5, "k1": 0.01, "k2": 0.03},
                          "SSIM (Wang 2003, 11x11 Gaussian sigma 1.5, valid window) on Y"),
    "psnr_rgb": MetricEntry(PSNR, {"space": "rgb"}, "PSNR (dB) over the three RGB channels"),
    "lpips": MetricEntry(LPIPS, {}, "LPIPS AlexNet v0.1 (lower is better)"),
    "musiq": MetricEntry(PyiqaMetric, {"pyiqa_name": "musiq", "weights_file": "musiq_koniq_ckpt-e95806b9.pth"},
                         "MUSIQ trained on KonIQ-10k (no-reference, via optional pyiqa)"),
    "maniqa": MetricEntry(PyiqaMetric, {"pyiqa_name": "maniqa", "weights_file": "ckpt_koniq10k.pt"},
                          "MANIQA trained on KonIQ-10k (no-reference, via optional pyiqa)"),
}


def list_metrics() -> list[str]:
    return list(METRICS)


def metric_parameters(name: str) -> set[str] | None:
    """Keyword arguments a metric accepts (what a protocol may set in ``metric_options``);
    ``None`` when it passes extra options through to its backend (pyiqa)."""
    params = inspect.signature(_entry(name).cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return set(params) - {"self", "name", "device"}


def create_metric(name: str, device: str | torch.device | None = None, **overrides) -> Metric:
    """A new metric instance: the table's defaults for ``name`` updated with ``overrides``."""
    entry = _entry(name)
    accepted = metric_parameters(name)
    if accepted is not None and set(overrides) - accepted:
        raise TypeError(f"metric {name!r} has no option(s) {sorted(set(overrides) - accepted)}; "
                        f"it accepts {sorted(accepted)}")
    return entry.cls(name=name, device=device, **{**entry.defaults, **overrides})


def get_metric(name: str, device: str | torch.device | None = None, **options) -> Metric:
    """A shared (cached) instance, so networks are built once per device and options."""
    dev = str(torch.device(device) if device is not None else default_device())
    return _cached(name, dev, tuple(sorted(options.items())))


@lru_cache(maxsize=64)
def _cached(name: str, device: str, options: tuple) -> Metric:
    return create_metric(name, device=device, **dict(options))


def availability(names, device: str | torch.device | None = None) -> dict[str, tuple[bool, str]]:
    """``name -> (available, reason)`` for each metric, e.g. to fill ``unavailable (...)`` cells."""
    return {name: get_metric(name, device).available() for name in names}


def _entry(name: str) -> MetricEntry:
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; choose from {list(METRICS)}")
    return METRICS[name]


__all__ = ["METRICS", "Metric", "MetricEntry", "MetricUnavailable", "availability", "create_metric",
           "default_device", "get_metric", "list_metrics", "metric_parameters"]
