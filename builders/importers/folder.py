"""A folder of HR images without references (Urban100, Manga109, Set5, ...): every image under the
folder (recursively, sorted) is one sample, level 0, no reference; id = path without extension."""
from __future__ import annotations

import os
from pathlib import Path

from . import register_layout
from ._base import Planned, Scan, is_image, stem_key


@register_layout("folder")
def scan(src: Path) -> Scan:
    out = Scan(src)
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath, name)
            if name.startswith("."):
                continue
            if not is_image(p):
                out.skip("not-an-image", p)
                continue
            if p.stat().st_size == 0:  # counted here, so it never takes the name of a real image beside it
                out.skip("empty-file", p)
                continue
            key = stem_key(p.relative_to(src).as_posix())
            if key in seen:
                out.skip("duplicate-name", p)
                continue
            seen.add(key)
            out.samples.append(Planned(key, key, 0, p))
    return out
