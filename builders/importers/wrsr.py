"""WR-SR layout (C2-Matching): ``input/NNN.png`` with its reference ``ref/NNN_ref.png`` (``ref/NNN.png``
is accepted too). One sample per input: id and group ``NNN``, level 1."""
from __future__ import annotations

from pathlib import Path

from . import register_layout
from ._base import Planned, Scan, is_image, visible_files


def images_by_stem(folder: Path, out: Scan) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in visible_files(folder):
        if not is_image(p):
            out.skip("not-an-image", p)
        elif p.stem in found:
            out.skip("duplicate-name", p)
        else:
            found[p.stem] = p
    return found


@register_layout("wrsr")
def scan(src: Path) -> Scan:
    out = Scan(src)
    for sub in ("input", "ref"):
        if not (src / sub).is_dir():
            raise FileNotFoundError(f"WR-SR layout needs {src / sub}/ (input/NNN.png and ref/NNN_ref.png)")
    inputs = images_by_stem(src / "input", out)
    refs = images_by_stem(src / "ref", out)
    used = set()
    for stem, hr in sorted(inputs.items()):
        key = f"{stem}_ref" if f"{stem}_ref" in refs else stem
        if key not in refs:
            out.skip("missing-reference", hr)
            continue
        used.add(key)
        out.samples.append(Planned(stem, stem, 1, hr, refs[key]))
    for key in sorted(set(refs) - used):
        out.skip("reference-without-input", refs[key])
    return out
