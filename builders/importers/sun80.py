"""Sun80 layout (Sun & Hays 2012): ``Sun_Hays_SR_groundtruth/<name>.jpg`` and its scene matches in
``Sun_Hays_SR_scenematches/<name>/`` (a folder named ``<name>.jpg`` is accepted too, as MASA's loader
expects). One sample per (image, match): id ``<name>/<match>``, group ``<name>``, level 1; papers
draw one match per image at random (``--max-refs 1 --seed S`` does that reproducibly)."""
from __future__ import annotations

from pathlib import Path

from . import register_layout
from ._base import Planned, Scan, is_image, visible_files

GT, MATCHES = "Sun_Hays_SR_groundtruth", "Sun_Hays_SR_scenematches"


@register_layout("sun80")
def scan(src: Path) -> Scan:
    out = Scan(src)
    for sub in (GT, MATCHES):
        if not (src / sub).is_dir():
            raise FileNotFoundError(f"Sun80 layout needs {src / sub}/")
    used_dirs = set()
    for hr in visible_files(src / GT):
        if not is_image(hr):
            out.skip("not-an-image", hr)
            continue
        folder = next((d for d in (src / MATCHES / hr.stem, src / MATCHES / hr.name) if d.is_dir()), None)
        if folder is None:
            out.skip("no-scene-matches", hr)
            continue
        used_dirs.add(folder.name)
        matches = []
        for p in visible_files(folder):
            (matches.append(p) if is_image(p) else out.skip("not-an-image", p))
        if not matches:
            out.skip("no-scene-matches", hr)
        for p in matches:
            out.samples.append(Planned(f"{hr.stem}/{p.stem}", hr.stem, 1, hr, p))
    for d in sorted((src / MATCHES).iterdir()):
        if d.is_dir() and not d.name.startswith(".") and d.name not in used_dirs:
            out.skip("matches-without-groundtruth", d)
    return out
