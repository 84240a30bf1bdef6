"""Official weights on request: ``python -m models.pretrained --fetch MODEL[.TAG]``.

For every file of a weight tag that is not yet at ``$REFSR_WEIGHTS/<model>/<file>``: download it
from where the authors publish it (a direct HTTPS link or GitHub release asset, resumed with HTTP
``Range`` into ``<file>.part``; Google Drive files and folders through the optional ``gdown``),
check it *before* it goes into place — the model for that tag is built on the meta device, the
file is read with the model's own :meth:`~models.base.RefSRModel.read_checkpoint` and
:meth:`~models.base.RefSRModel.checkpoint_filter`, and its keys and shapes must match the role's
sub-module exactly — then move it atomically and record its sha256 and source URL as the
official hash for the tag (the record :mod:`models.weights` reads). A file that does not fit is
refused with the diff and deleted. Files the authors publish only on a web page (or not at all)
get a message saying where to get them by hand. Nothing here runs unless asked for.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from core.download import (DownloadError, GdownMissing, download, drive_kind, import_gdown, install_checked,
                           is_direct_file_url, part_path)
from core.files import locked

from .spec import CheckpointFile
from .checkpoint import CheckpointError, describe_mismatch
from .registry import create_model, full_name, get_spec, split_name
from .weights import _record, file_sha256, official_path, recorded_hashes


class FetchError(CheckpointError):
    """Some files of a tag could not be fetched; ``problems`` lists them (one :class:`Problem` each)."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class Problem:
    tag: str
    filename: str
    kind: str  # unpublished | manual | missing-package | failed | refused
    message: str

    @property
    def fixable_here(self) -> bool:
        """False for files nobody can fetch automatically (not published, or only on a web page)."""
        return self.kind not in ("unpublished", "manual")


@dataclass
class FetchReport:
    tag: str
    fetched: dict[str, Path] = field(default_factory=dict)  # role -> path
    present: dict[str, Path] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def source(ck: CheckpointFile) -> tuple[str, str]:
    """(kind, link) of where a file can be fetched from: ``http``, ``drive``, ``manual`` (a web page:
    get it by hand) or ``unpublished``."""
    if ck.download:
        return ("drive" if drive_kind(ck.download) else "http"), ck.download
    if not ck.url:
        return "unpublished", ""
    if drive_kind(ck.url) and " " not in ck.url.strip():
        return "drive", ck.url.strip()
    if is_direct_file_url(ck.url, ck.filename):
        return "http", ck.url
    return "manual", ck.url


def check_file(model, role: str, path: str | os.PathLike) -> str:
    """'' when ``path`` fits ``role`` of ``model`` (read and filtered as the model does), else the diff."""
    try:
        sd = model.checkpoint_filter(role, model.read_checkpoint(role, path))
    except CheckpointError as exc:
        return str(exc)
    module = model.checkpoint_modules().get(role)
    if module is None:
        return f"the model has no sub-network for role {role!r}"
    return describe_mismatch(module.state_dict(), sd)


def _meta_model(full: str):
    import torch  # here, so listings that only read sources stay torch-free

    with torch.device("meta"):
        return create_model(full)


def fetch_weights(name: str, *, force: bool = False, timeout: float = 60.0, progress: bool = True,
                  log=print) -> FetchReport:
    """Fetch, check and place every file of ``name[.tag]``; raise :class:`FetchError` listing the
    files that could not be fetched (the others are in place)."""
    arch, tag_name = split_name(name)
    full = full_name(arch, tag_name)
    tag = get_spec(arch).tag(tag_name)
    report = FetchReport(full)
    if tag is None:
        log(f"{full}: needs no weight files")
        return report
    model = None
    for ck in tag.files:
        dest = official_path(arch, ck.filename)
        if dest.is_file() and not force:
            report.present[ck.role] = dest
            log(f"{full}: {ck.filename} already present at {dest}")
            continue
        kind, link = source(ck)
        if kind == "unpublished":
            report.problems.append(Problem(full, ck.filename, kind, (
                f"{ck.filename} [{ck.role}] is not published by the authors: train it (python -m "
                f"benchmark.train) or pass your own file with --weights")))
            continue
        if kind == "manual":
            report.problems.append(Problem(full, ck.filename, kind, (
                f"{ck.filename} [{ck.role}] has no direct download link; get it by hand from {link} "
                f"and put it at {dest}")))
            continue
        try:
            if kind == "drive":
                import_gdown(link, ck.filename, dest)  # before anything is created or logged
            if model is None:
                model = _meta_model(full)
            report.fetched[ck.role] = _fetch_one(full, model, ck, link, dest, timeout, progress, log)
        except GdownMissing as exc:
            report.problems.append(Problem(full, ck.filename, "missing-package", str(exc)))
        except FetchError as exc:
            report.problems.append(Problem(full, ck.filename, "refused", str(exc)))
        except DownloadError as exc:
            report.problems.append(Problem(full, ck.filename, "failed", f"{ck.filename}: {exc}"))
    if report.problems:
        lines = [f"{full}: {len(report.problems)} file(s) not fetched:"]
        lines += ["  " + p.message.replace("\n", "\n  ") for p in report.problems]
        raise FetchError("\n".join(lines), report.problems)
    return report


def _fetch_one(full: str, model, ck: CheckpointFile, link: str, dest: Path, timeout: float,
               progress: bool, log) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with locked(dest.parent / f".{dest.name}.lock"):
        log(f"{full}: downloading {ck.filename} from {link}")
        part = download(link, dest, timeout=timeout, progress=progress)
        def check(path, digest):
            if ck.sha256 and digest != ck.sha256:
                raise FetchError(f"{ck.filename} from {link}: sha256 {digest} is not the official {ck.sha256}; "
                                 f"not installed")
            diff = check_file(model, ck.role, path)
            if diff:
                raise FetchError(f"{ck.filename} from {link} does not fit {full} (role {ck.role!r}); "
                                 f"not installed:\n{diff}")

        digest = install_checked(part, dest, check)  # checked under the real suffix (SRNTT's .npz/.mat)
    old = recorded_hashes().get(full, {}).get(ck.role, {}).get("sha256")
    if old and old != digest:
        log(f"{full}: the recorded official sha256 of {ck.role} changes from {old[:12]}… to {digest[:12]}… "
            f"(the file now comes from {link})")
    _record(full, ck.role, digest, ck.filename, link)
    file_sha256(dest)  # warm the cache
    log(f"{full}: {ck.filename} verified ({ck.role}) and installed at {dest} (sha256 {digest})")
    return dest


def describe_sources(name: str) -> list[str]:
    """One line per file of ``name[.tag]``: where it would be fetched from."""
    arch, tag_name = split_name(name)
    tag = get_spec(arch).tag(tag_name)
    out = []
    for ck in tag.files if tag is not None else ():
        kind, link = source(ck)
        out.append(f"{ck.filename} [{ck.role}]: {kind}{' ' + link if link else ''}")
    return out


__all__ = ["FetchError", "FetchReport", "Problem", "check_file", "describe_sources", "fetch_weights", "part_path",
           "source"]
