"""A pair list (DRefSR-style releases, or your own): a CSV/text file of ``hr,ref`` image paths, one
pair a line, relative to the list's folder or absolute. Commas or tabs separate the fields (spaces
when a line has neither); ``#`` starts a comment. A header row naming ``hr`` and ``ref`` may add
``level``, ``group`` and ``split`` columns. ``--src`` is the list file, or a folder holding exactly one ``*.csv``/``*.txt``.
One sample per pair: id ``<hr>~<ref>`` (paths without extension), group = the HR, level 1 unless given."""
from __future__ import annotations

import re
from pathlib import Path

from . import register_layout
from ._base import Planned, Scan, is_image, stem_key



def split_fields(line: str) -> list[str]:
    """Comma- or tab-separated when the line has one (paths may hold spaces), else whitespace."""
    if "," in line or "\t" in line:
        return [f.strip() for f in re.split(r"[,\t]", line)]
    return line.split()


def find_list(src: Path) -> Path:
    if src.is_file():
        return src
    lists = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".txt")
                   and not p.name.startswith("."))
    if len(lists) != 1:
        raise FileNotFoundError(f"{src} must hold exactly one .csv/.txt pair list, found {[p.name for p in lists]}")
    return lists[0]


@register_layout("pairs")
def scan(src: Path) -> Scan:
    listing = find_list(src)
    root = listing.parent
    out = Scan(root)
    columns = ["hr", "ref"]
    seen: set[tuple[Path, Path]] = set()
    lines = [(i, line.split("#", 1)[0].strip()) for i, line in enumerate(listing.read_text().splitlines(), 1)]
    lines = [(i, line) for i, line in lines if line]
    if lines and {"hr", "ref"} <= set(f.lower() for f in split_fields(lines[0][1])):
        columns = [f.lower() for f in split_fields(lines[0][1])]
        lines = lines[1:]
    for i, line in lines:
        where = f"{listing.name}:{i}"
        fields = split_fields(line)
        if len(fields) != len(columns):
            out.skip(f"malformed-line (want {len(columns)} fields)", where)
            continue
        row = dict(zip(columns, fields))
        hr, ref = (root / row["hr"]).resolve(), (root / row["ref"]).resolve()
        missing = [p for p in (hr, ref) if not p.is_file()]
        if missing:
            out.skip("missing-file", f"{where} {missing[0]}")
        elif not (is_image(hr) and is_image(ref)):
            out.skip("not-an-image", where)
        elif (hr, ref) in seen:
            out.skip("duplicate-pair", where)
        elif "level" in row and not row["level"].isdigit():
            out.skip("bad-level", where)
        else:
            seen.add((hr, ref))
            key = lambda p: stem_key(p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p))  # noqa: E731
            out.samples.append(Planned(f"{key(hr)}~{key(ref)}", row.get("group", key(hr)),
                                       int(row.get("level", 1)), hr, ref, row.get("split", "test")))
    return out
