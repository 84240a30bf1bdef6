"""Where the suite keeps data and weights: environment variables over per-user cache folders."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ROOT = Path.home() / ".cache" / "refsr-bench"


def data_dir() -> Path:
    """Root of dataset folders: ``$REFSR_DATA`` or ``~/.cache/refsr-bench/data``."""
    return Path(os.environ.get("REFSR_DATA") or CACHE_ROOT / "data").expanduser()


def weights_dir() -> Path:
    """Root of model weights: ``$REFSR_WEIGHTS`` or ``~/.cache/refsr-bench/weights``."""
    return Path(os.environ.get("REFSR_WEIGHTS") or CACHE_ROOT / "weights").expanduser()
