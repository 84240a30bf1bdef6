"""Turn a layout's scan into a dataset: check every image, link or copy it in, write the manifest.

Images that decode as 8-bit RGB are hard-linked (copied when linking fails, e.g. across devices);
grayscale, alpha and 16-bit images are converted to 8-bit RGB PNG and counted; unreadable or too
small images drop the samples that use them, with the reason counted. The dataset is written
through :class:`~builders.manifest.DatasetWriter`, so a failed import leaves nothing behind.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from builders.images import BadImage, read_rgb, write_png
from builders.manifest import DatasetWriter, write_dataset_files
from builders.report import BuildReport
from core.files import link_or_copy
from core.seeding import keyed_rng

from ._base import Planned, Scan


@dataclass(frozen=True)
class Checked:
    """The outcome of reading one source image."""

    src: Path
    rel: str = ""                 # destination path inside the dataset
    height: int = 0
    width: int = 0
    notes: tuple[str, ...] = ()   # conversions needed (grayscale, alpha, 16-bit)
    reason: str = ""              # why the image is unusable ("" when usable)
    digest: str = ""              # sha256 of the source bytes


class ImportReport(BuildReport):
    """A build report that also counts how image files got into the dataset."""

    def __init__(self, layout: str, out: str):
        super().__init__(recipe=f"import:{layout}", out=out)
        self.files: Counter = Counter()   # linked / copied / converted -> count

    def to_dict(self) -> dict:
        return {**super().to_dict(), "files": dict(sorted(self.files.items()))}

    def format(self) -> str:
        lines = super().format().splitlines()
        lines[1] = f"  inputs: {self.albums} groups, {self.images} distinct images"
        placed = ", ".join(f"{k}={v}" for k, v in sorted(self.files.items())) or "none"
        return "\n".join([*lines, f"  files: {placed}"])


def dest_name(scan: Scan, src: Path, converted: bool) -> str:
    """Mirror the source path under the scan root; files outside it go to ``external/<hash>/``."""
    if src.is_relative_to(scan.root):
        rel = PurePosixPath(src.relative_to(scan.root).as_posix())
    else:
        rel = PurePosixPath("external", hashlib.sha256(str(src).encode()).hexdigest()[:12], src.name)
    return str(rel.with_suffix(".png")) if converted else str(rel)


def check(scan: Scan, src: Path, min_size: int) -> Checked:
    try:
        img, notes = read_rgb(src)
    except BadImage as e:
        return Checked(src, reason=e.reason)
    except OSError as e:
        return Checked(src, reason=f"unreadable ({type(e).__name__})")
    h, w = img.shape[:2]
    if min(h, w) < min_size:
        return Checked(src, height=h, width=w, reason="too-small")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    return Checked(src, dest_name(scan, src, bool(notes)), h, w, tuple(notes), digest=digest)


def place(src: Path, dst: Path, info: Checked, link: bool) -> tuple[str, str]:
    """Put one image into the dataset; return (how, sha256 prefix of the written bytes)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if info.notes:
        write_png(dst, read_rgb(src)[0])
        how = "converted"
    else:
        how = link_or_copy(src, dst, link)
    return how, hashlib.sha256(dst.read_bytes()).hexdigest()[:16]


def limit_refs(samples: list[Planned], max_refs: int, seed: int) -> list[Planned]:
    """Keep at most ``max_refs`` referenced samples per group, a seeded draw per group."""
    by_group: dict[str, list[Planned]] = {}
    for s in samples:
        by_group.setdefault(s.group, []).append(s)
    kept = []
    for group, members in by_group.items():
        with_ref = [s for s in members if s.ref is not None]
        if len(with_ref) > max_refs:
            pick = keyed_rng(seed, group).choice(
                len(with_ref), max_refs, replace=False)
            chosen = {with_ref[int(i)].sample_id for i in pick}
            members = [s for s in members if s.ref is None or s.sample_id in chosen]
        kept.extend(members)
    return kept


def import_scan(scan: Scan, layout: str, out: Path, *, jobs: int = 1, overwrite: bool = False,
                link: bool = True, min_size: int = 16, max_refs: int = 0, seed: int = 0,
                options: dict | None = None) -> ImportReport:
    """Write the scanned samples as a dataset at ``out`` and return the report."""
    report = ImportReport(layout, str(out))
    for s in scan.skipped:
        report.skip(s.where, s.reason)
    samples = sorted(scan.samples, key=lambda s: s.sample_id)
    sources = sorted({p for s in samples for p in (s.hr, s.ref) if p is not None})
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        checked = dict(zip(sources, pool.map(lambda p: check(scan, p, min_size), sources)))
    report.images = len(sources)
    rel = lambda p: p.relative_to(scan.root).as_posix() if p.is_relative_to(scan.root) else str(p)  # noqa: E731
    owners: dict[str, Path] = {}
    for src, info in checked.items():
        if info.reason:
            report.skip(rel(src), info.reason)
        elif owners.setdefault(info.rel, src) != src:
            checked[src] = Checked(src, reason="name-collision")
            report.skip(rel(src), "name-collision")
    # the same ground truth under two names would count twice in every mean: keep the first
    first_hr: dict[str, Path] = {}
    for src in sorted({s.hr for s in samples}):
        info = checked[src]
        if not info.reason and first_hr.setdefault(info.digest, src) != src:
            checked[src] = Checked(src, reason="duplicate-image")
            report.skip(f"{rel(src)} (same bytes as {rel(first_hr[info.digest])})", "duplicate-image")
    usable = []
    for s in samples:
        bad = [(role, checked[p].reason) for role, p in (("hr", s.hr), ("ref", s.ref))
               if p is not None and checked[p].reason]
        if bad:
            report.skip(s.sample_id, "sample-dropped: " + ", ".join(f"{role} {r}" for role, r in bad))
        else:
            usable.append(s)
    if max_refs > 0:
        kept = limit_refs(usable, max_refs, seed)
        for s in sorted(set(usable) - set(kept), key=lambda s: s.sample_id):
            report.skip(s.sample_id, "not-drawn (--max-refs)")
        usable = kept
    rows, used = [], set()
    for s in usable:
        hr, ref = checked[s.hr], checked[s.ref] if s.ref is not None else None
        used.update(p for p in (s.hr, s.ref) if p is not None)
        rows.append({"sample_id": s.sample_id, "split": s.split, "group": s.group, "level": s.level,
                     "hr": hr.rel, "ref": ref.rel if ref else "",
                     "hr_height": hr.height, "hr_width": hr.width,
                     "ref_height": ref.height if ref else 0, "ref_width": ref.width if ref else 0,
                     "source_hr": rel(s.hr), "source_ref": rel(s.ref) if s.ref is not None else "",
                     "converted": ";".join([f"hr:{n}" for n in hr.notes] + [f"ref:{n}" for n in (ref.notes if ref else ())])})
        report.samples[(s.split, s.level)] += 1
    for p in sorted(used):
        for note in checked[p].notes:
            report.converted[note] += 1
    report.albums = len({s.group for s in usable})
    with DatasetWriter(out, overwrite=overwrite) as tmp:
        files = sorted(used)
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            placed = dict(zip(files, pool.map(lambda p: place(p, tmp / checked[p].rel, checked[p], link), files)))
        for how, _ in placed.values():
            report.files[how] += 1
        sha = {checked[p].rel: digest for p, (_, digest) in placed.items()}
        manifest = pd.DataFrame(rows, columns=["sample_id", "split", "group", "level", "hr", "ref", "hr_height",
                                               "hr_width", "ref_height", "ref_width", "source_hr", "source_ref",
                                               "converted"])
        manifest["hr_sha256"] = [sha[r] for r in manifest["hr"]]
        manifest["ref_sha256"] = [sha.get(r, "") for r in manifest["ref"]]
        report.finish()
        spec = {"name": out.name, "kind": "import", "layout": layout, "source": str(scan.root),
                "created_by": "builders.import",
                "options": {"min_size": min_size, "max_refs": max_refs, "seed": seed, **(options or {})},
                "report": report.to_dict()}
        write_dataset_files(tmp, manifest, spec)
    return report
