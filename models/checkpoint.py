"""Safe, strict loading of official checkpoints.

Official ``.pth`` files are opened with ``torch.load(weights_only=True)`` only: a pickle from the
internet is otherwise arbitrary code. Wrappers (``params``, ``params_ema``, ``state_dict``, …) are
unwrapped, ``module.`` prefixes stripped, and the load is strict with a readable report of what is
missing or unexpected. Per-model key rules live on the model (``RefSRModel.checkpoint_filter``);
which files to load is :mod:`models.weights`.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a file is read, so listing weights does not load it
    import torch
    from torch import nn

WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net", "generator")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found or does not fit the architecture."""


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint with ``weights_only=True`` and unwrap it to a flat tensor dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, empty, not a torch file, or a pickle that is not plain weights
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"cannot read {path} as plain weights (torch.load weights_only=True): "
                              f"{type(exc).__name__}: {first[:200]}") from None
    return unwrap(obj)


def unwrap(obj: object) -> dict[str, torch.Tensor]:
    """Descend through known wrapper keys until a dict of tensors remains; strip ``module.``."""
    while isinstance(obj, Mapping) and not _is_tensor_dict(obj):
        key = next((k for k in WRAPPER_KEYS if k in obj), None)
        if key is None:
            raise CheckpointError(
                f"cannot find the weights in a checkpoint with keys {sorted(map(str, obj))[:10]}; "
                f"expected a tensor dict or one of {WRAPPER_KEYS}")
        obj = obj[key]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    return {re.sub(r"^(module\.)+", "", k): v for k, v in obj.items()}


def _is_tensor_dict(obj: Mapping) -> bool:
    import torch

    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def describe_mismatch(model_sd: Mapping[str, torch.Tensor], ckpt: Mapping[str, torch.Tensor]) -> str:
    """Human-readable diff of keys and shapes between a model and a checkpoint ('' if equal)."""
    missing = sorted(set(model_sd) - set(ckpt))
    unexpected = sorted(set(ckpt) - set(model_sd))
    wrong = sorted(k for k in set(model_sd) & set(ckpt) if tuple(model_sd[k].shape) != tuple(ckpt[k].shape))
    lines = []
    for title, keys, fmt in (
        ("missing from the checkpoint", missing, lambda k: f"{k} {tuple(model_sd[k].shape)}"),
        ("unexpected in the checkpoint", unexpected, lambda k: f"{k} {tuple(ckpt[k].shape)}"),
        ("shape mismatch (model vs checkpoint)", wrong,
         lambda k: f"{k} {tuple(model_sd[k].shape)} vs {tuple(ckpt[k].shape)}"),
    ):
        if keys:
            lines.append(f"{len(keys)} {title}:")
            lines += [f"  {fmt(k)}" for k in keys[:20]]
            if len(keys) > 20:
                lines.append(f"  … and {len(keys) - 20} more")
    return "\n".join(lines)


def load_into(module: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> None:
    """Strictly load ``source`` (a path or a state dict) into ``module``."""
    sd = read_state_dict(source) if not isinstance(source, Mapping) else unwrap(source)
    diff = describe_mismatch(module.state_dict(), sd)
    if diff:
        raise CheckpointError(f"checkpoint does not fit {type(module).__name__}:\n{diff}")
    module.load_state_dict(sd, strict=True)
