"""``irrelevant:POOL``: the reference replaced by a random image from a pool of unrelated images
(FRFSR's CUFEDR: the 289 HR images of Urban100 + Manga109 + Sun80; any folder works).

The pool is every image under ``POOL`` (recursively, sorted by relative path, hidden files
skipped). ``POOL`` is a folder path, or else a folder name under ``$REFSR_DATA`` (default
``~/.cache/refsr-bench/data``, where the harness keeps ``demo_pool``). The name and ``params``
keep ``POOL`` as written plus the pool's size and a digest of its file list, not the resolved
location, so the draws do not depend on where the data is installed. A draw that is
pixel-identical to the sample's own HR is redrawn. Pool images are used as they are (any size).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from builders.images import IMAGE_EXTENSIONS, BadImage, read_rgb
from core.paths import data_dir

from . import register_variant
from ._base import Variant, VariantError


def pool_files(root: Path) -> list[str]:
    """Relative POSIX paths of the images under ``root``, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath, f).relative_to(root).as_posix())
    return sorted(found)


def resolve_pool(pool: str) -> Path:
    path = Path(pool).expanduser()
    if path.is_dir():
        return path
    data = data_dir()
    if (data / pool).is_dir():
        return data / pool
    raise ValueError(f"irrelevant: pool folder {pool!r} not found (a folder path or a folder under {data})")


class Irrelevant(Variant):
    def __init__(self, pool: str):
        self.root = resolve_pool(pool)
        self.files = pool_files(self.root)
        if not self.files:
            raise ValueError(f"irrelevant: pool folder {pool!r} holds no images")
        self.name = f"irrelevant:{os.path.normpath(pool)}"
        digest = hashlib.sha256("\n".join(self.files).encode()).hexdigest()[:16]
        self.params = {"pool": os.path.normpath(pool), "pool_size": len(self.files), "pool_digest": digest}

    def transform(self, inp, rng):
        order = rng.permutation(len(self.files))
        for i in order:
            rel = self.files[int(i)]
            try:
                img, notes = read_rgb(self.root / rel)
            except BadImage as e:
                raise VariantError(f"pool-{e.reason}", rel) from e
            if img.shape == inp.hr.shape and np.array_equal(img, inp.hr):
                continue
            return img, {"pool_file": rel, "pool_index": int(i), "conversions": notes}
        raise VariantError("pool-only-self", "every pool image equals the sample's HR")


@register_variant("irrelevant", "irrelevant:POOL_DIR", pool=True, example="irrelevant:{pool}")
def make(arg: str | None) -> Variant:
    if not arg:
        raise ValueError("irrelevant needs a pool folder: irrelevant:POOL_DIR")
    return Irrelevant(arg)
