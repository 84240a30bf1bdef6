"""CUFED5 test layout (SRNTT): a flat folder of ``NNN_0.png`` (HR) and ``NNN_k.png`` (reference at
level k, 1 = most similar). One sample per reference: id ``NNN_k``, group ``NNN``, level ``k``."""
from __future__ import annotations

import re
from pathlib import Path

from . import register_layout
from ._base import Planned, Scan, is_image, visible_files

NAME = re.compile(r"^(?P<group>\d+)_(?P<k>\d+)$")


@register_layout("cufed5")
def scan(src: Path) -> Scan:
    out = Scan(src)
    groups: dict[str, dict[int, Path]] = {}
    for p in visible_files(src):
        m = NAME.match(p.stem)
        if not is_image(p):
            out.skip("not-an-image", p)
        elif not m:
            out.skip("unrecognised-name", p)
        elif int(m["k"]) in groups.setdefault(m["group"], {}):
            out.skip("duplicate-name", p)
        else:
            groups[m["group"]][int(m["k"])] = p
    for group, files in sorted(groups.items()):
        if 0 not in files:
            for p in files.values():
                out.skip("no-hr-in-group", p)
            continue
        if len(files) == 1:
            out.skip("no-references", files[0])
            continue
        for k, p in sorted(files.items()):
            if k:
                out.samples.append(Planned(f"{group}_{k}", group, k, files[0], p))
    return out
