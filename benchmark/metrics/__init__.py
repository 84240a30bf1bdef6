"""Metric registry: ``create_metric(name)`` from per-metric registrations (pyiqa-style defaults).

Each module in this package registers its metrics with :func:`register_metric`, giving the class,
its default keyword arguments and the metric's facts (:class:`MetricInfo`: label, direction,
full- or no-reference, decimals, headline). Leaderboards and ``--help`` read those facts; nothing
else lists metrics. ``create_metric`` merges the caller's overrides (e.g. a protocol's
``metric_options``) over the defaults and nothing else: no metric is special-cased by name.
Metrics take ``(B, C, H, W)`` float tensors on the 0-255 scale in the colour space they declare
and return one float64 value per image (see :mod:`._base`).
"""
from __future__ import annotations

import inspect
import os
from functools import lru_cache
from typing import TYPE_CHECKING

from core.paths import weights_dir

from ._base import METRICS, Metric, MetricInfo, MetricUnavailable, default_device, register_metric

if TYPE_CHECKING:
    import torch


def list_metrics(pattern: str | None = None) -> list[str]:
    return METRICS.list(pattern)


def metric_info(name: str) -> MetricInfo:
    """The registered facts of ``name``."""
    return METRICS.info(name)["info"]


def metric_parameters(name: str) -> set[str] | None:
    """Keyword arguments a metric accepts (what a protocol may set in ``metric_options``);
    ``None`` when it passes extra options through to its backend (pyiqa)."""
    params = inspect.signature(metric_info(name).cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return set(params) - {"self", "name", "device"}


def create_metric(name: str, device: str | torch.device | None = None, **overrides) -> Metric:
    """A new metric instance: the registered defaults for ``name`` updated with ``overrides``."""
    info = metric_info(name)
    accepted = metric_parameters(name)
    if accepted is not None and set(overrides) - accepted:
        raise TypeError(f"metric {name!r} has no option(s) {sorted(set(overrides) - accepted)}; "
                        f"it accepts {sorted(accepted)}")
    return info.cls(name=name, device=device, **{**info.defaults, **overrides})


def get_metric(name: str, device: str | torch.device | None = None, **options) -> Metric:
    """A shared (cached) instance, so networks are built once per device and options."""
    import torch

    dev = str(torch.device(device) if device is not None else default_device())
    # keyed by the weights folders too: availability depends on them ($REFSR_WEIGHTS, $REFSR_IQA_WEIGHTS)
    folders = (str(weights_dir()), os.environ.get("REFSR_IQA_WEIGHTS", ""))
    return _cached(name, dev, tuple(sorted(options.items())), folders)


@lru_cache(maxsize=64)
def _cached(name: str, device: str, options: tuple, folders: tuple) -> Metric:
    return create_metric(name, device=device, **dict(options))


def availability(names, device: str | torch.device | None = None) -> dict[str, tuple[bool, str]]:
    """``name -> (available, reason)`` for each metric, e.g. to fill ``unavailable (...)`` cells."""
    return {name: get_metric(name, device).available() for name in names}


def metrics_help() -> str:
    """One line per metric for ``--help``."""
    briefs = {n: METRICS.brief(n) for n in list_metrics()}  # from the index: no metric module imported
    return "; ".join(f"{n} {'↑' if b['higher_is_better'] else '↓'} ({b['summary']})" for n, b in briefs.items())


__all__ = ["METRICS", "Metric", "MetricInfo", "MetricUnavailable", "availability", "create_metric",
           "default_device", "get_metric", "list_metrics", "metric_info", "metric_parameters", "metrics_help",
           "register_metric"]
