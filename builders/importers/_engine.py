"""Turn a layout's scan into a dataset: check every image, link or copy it in, write the manifest.

Images that decode as 8-bit RGB are hard-linked (copied when linking fails, e.g. across devices);
grayscale, alpha and 16-bit images are converted to 8-bit RGB PNG and counted; unreadable or too
small images drop the samples that use them, with the reason counted. The planned rows go through
the shared writer (:mod:`builders.writer`), so a failed import leaves nothing behind.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

from builders.images import BadImage, read_rgb
from builders.report import BuildReport
from builders.writer import Digest, Row, Source, check_target, make_spec, write_dataset
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
    """A build report whose inputs are groups and distinct images."""

    def __init__(self, layout: str, out: str):
        super().__init__(recipe=f"import:{layout}", out=out)

    def format(self) -> str:
        lines = super().format().splitlines()
        lines[1] = f"  inputs: {self.albums} groups, {self.images} distinct images"
        return "\n".join(lines)


def dest_name(scan: Scan, src: Path, converted: bool) -> str:
    """Mirror the source path under the scan root; files outside it go to ``external/<hash>/``
    (:func:`plan` puts either under the sample's split folder)."""
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


#: The manifest columns of an imported dataset, in order.
COLUMNS = ["sample_id", "split", "group", "level", "hr", "ref", "hr_height", "hr_width", "ref_height", "ref_width",
           "source_hr", "source_ref", "converted", "hr_sha256", "ref_sha256"]


def rel_to(scan: Scan, p: Path) -> str:
    return p.relative_to(scan.root).as_posix() if p.is_relative_to(scan.root) else str(p)


def plan(scan: Scan, report: ImportReport, *, jobs: int = 1, min_size: int = 16, max_refs: int = 0,
         seed: int = 0) -> tuple[list[Row], dict[Path, Checked]]:
    """Check every source image and return the rows to write (and what was read of each source)."""
    for s in scan.skipped:
        report.skip(s.reason, s.where)
    samples = sorted(scan.samples, key=lambda s: s.sample_id)
    sources = sorted({p for s in samples for p in (s.hr, s.ref) if p is not None})
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        checked = dict(zip(sources, pool.map(lambda p: check(scan, p, min_size), sources)))
    report.images = len(sources)
    rel = partial(rel_to, scan)
    owners: dict[str, Path] = {}
    for src, info in checked.items():
        if info.reason:
            report.skip(info.reason, rel(src))
        elif owners.setdefault(info.rel, src) != src:
            checked[src] = Checked(src, reason="name-collision")
            report.skip("name-collision", rel(src))
    # the same ground truth under two names would count twice in every mean: keep the first
    first_hr: dict[str, Path] = {}
    for src in sorted({s.hr for s in samples}):
        info = checked[src]
        if not info.reason and first_hr.setdefault(info.digest, src) != src:
            checked[src] = Checked(src, reason="duplicate-image")
            report.skip("duplicate-image", f"{rel(src)} (same bytes as {rel(first_hr[info.digest])})")
    usable = []
    for s in samples:
        bad = [(role, checked[p].reason) for role, p in (("hr", s.hr), ("ref", s.ref))
               if p is not None and checked[p].reason]
        if bad:
            report.skip("sample-dropped: " + ", ".join(f"{role} {r}" for role, r in bad), s.sample_id)
        else:
            usable.append(s)
    if max_refs > 0:
        kept = limit_refs(usable, max_refs, seed)
        for s in sorted(set(usable) - set(kept), key=lambda s: s.sample_id):
            report.skip("not-drawn (--max-refs)", s.sample_id)
        usable = kept
    rows, used = [], set()
    for s in usable:
        hr, ref = checked[s.hr], checked[s.ref] if s.ref is not None else None
        used.update(p for p in (s.hr, s.ref) if p is not None)
        # under the split folder, as the writer requires (a file two splits use is placed in both)
        hr_rel, ref_rel = f"{s.split}/{hr.rel}", f"{s.split}/{ref.rel}" if ref else ""
        files = {hr_rel: Source(s.hr, convert=bool(hr.notes))}
        if ref is not None:
            files[ref_rel] = Source(s.ref, convert=bool(ref.notes))
        rows.append(Row({"sample_id": s.sample_id, "split": s.split, "group": s.group, "level": s.level,
                         "hr": hr_rel, "ref": ref_rel,
                         "hr_height": hr.height, "hr_width": hr.width,
                         "ref_height": ref.height if ref else 0, "ref_width": ref.width if ref else 0,
                         "source_hr": rel(s.hr), "source_ref": rel(s.ref) if s.ref is not None else "",
                         "converted": ";".join([f"hr:{n}" for n in hr.notes] +
                                               [f"ref:{n}" for n in (ref.notes if ref else ())]),
                         "hr_sha256": Digest(hr_rel), "ref_sha256": Digest(ref_rel) if ref else ""}, files))
    for p in sorted(used):
        for note in checked[p].notes:
            report.converted[note] += 1
    report.albums = len({s.group for s in usable})
    return rows, {p: checked[p] for p in sorted(used)}


def import_scan(scan: Scan, layout: str, out: Path, *, jobs: int = 1, overwrite: bool = False,
                link: bool = True, min_size: int = 16, max_refs: int = 0, seed: int = 0,
                options: dict | None = None, version: str = "1.0") -> ImportReport:
    """Write the scanned samples as a dataset at ``out`` and return the report."""
    check_target(out, overwrite)
    report = ImportReport(layout, str(out))
    rows, used = plan(scan, report, jobs=jobs, min_size=min_size, max_refs=max_refs, seed=seed)
    listing = "\n".join(f"{rel_to(scan, p)} {info.digest}" for p, info in used.items())
    inputs = {"images_used": len(used), "sha256": hashlib.sha256(listing.encode()).hexdigest()}
    spec = make_spec(name=out.name, kind="import", created_by=layout, version=version,
                     config={"min_size": min_size, "max_refs": max_refs, **(options or {})},
                     seed=seed, source=str(scan.root), inputs=inputs)
    write_dataset(out, rows, spec, report, columns=COLUMNS, overwrite=overwrite, jobs=jobs, link=link)
    return report
