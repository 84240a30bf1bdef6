"""What a layout scanner returns: planned samples pointing at source files, and skipped inputs.

A layout module only reads names and folders (no image decoding); the engine then checks every
image, copies or hard-links it into the dataset and writes the manifest.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from builders.images import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class Planned:
    """One manifest row to be: source files are absolute paths; ``level`` 0 means no reference."""

    sample_id: str
    group: str
    level: int
    hr: Path
    ref: Path | None = None
    split: str = "test"


@dataclass(frozen=True)
class Skipped:
    """An input left out, with a short reason key (counted in the report) and where it was."""

    reason: str
    where: str


@dataclass
class Scan:
    """A layout's reading of ``root``: file names in the dataset mirror paths relative to ``root``."""

    root: Path
    samples: list[Planned] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def skip(self, reason: str, where: Path | str) -> None:
        where = Path(where)
        rel = where.relative_to(self.root).as_posix() if where.is_relative_to(self.root) else str(where)
        self.skipped.append(Skipped(reason, rel))


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def visible_files(folder: Path) -> list[Path]:
    """Files directly in ``folder``, hidden ones excluded, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def stem_key(rel: str) -> str:
    """A relative path without its image extension, usable in a sample id."""
    return re.sub(r"\.[A-Za-z0-9]+$", "", rel)
