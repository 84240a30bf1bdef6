"""What made an output: the git commit of the code and the versions of the packages it used."""
from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("refsr-bench", "torch", "torchvision", "numpy", "opencv-python-headless", "datasets",
            "pandas", "pyarrow", "pillow", "lpips", "pyiqa", "scikit-image")


@lru_cache(maxsize=1)
def git_sha() -> str:
    """Commit of the working tree, with ``-dirty`` when it has uncommitted changes; 'unknown' outside git
    (an installed wheel: its version is in :func:`versions`, and a git repository around the
    environment is not its source)."""
    if not (REPO / ".git").exists():
        return "unknown"
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Python and the installed version of every package in :data:`PACKAGES` ('absent' if missing)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def machine() -> dict[str, str]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": str(os.cpu_count())}
