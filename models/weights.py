"""Which weight files a model uses, whether they are the official ones, and loading them.

One resolver maps ``name[.tag]`` (plus optional user files) to a path per role, with one message
for missing files. Every file is identified by its sha256; a file is labelled ``official`` only
when its hash is the official one for that tag: the hash in the spec when the authors publish it,
else the hash recorded the first time a file is found at the official place
(``$REFSR_WEIGHTS/<model>/<file>``), kept in ``$REFSR_WEIGHTS/official_sha256.json`` with where it
came from. Any other file is ``custom``; models without learned weights are ``none``.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from core.files import atomic_write_json
from core.paths import weights_dir

from .checkpoint import CheckpointError, load_into
from .registry import full_name, get_spec, split_name

if TYPE_CHECKING:
    from torch import nn

RECORD = "official_sha256.json"


class MissingWeights(CheckpointError):
    """Weight files a model needs are not where they should be."""


@dataclass(frozen=True)
class ResolvedWeights:
    """The files one model instance uses and what they are."""

    tag: str  # full name, e.g. "ttsr.rec"
    files: dict[str, Path] = field(default_factory=dict)  # role -> path
    sha256: dict[str, str] = field(default_factory=dict)  # role -> hex digest
    label: str = "none"  # official | custom | trained:<run id>@<sha> (benchmark.train's files) | none

    def sha256_json(self) -> str:
        return json.dumps(self.sha256, sort_keys=True)


def official_path(arch: str, filename: str) -> Path:
    return weights_dir() / arch / filename


@lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, cached while its size and modification time stay the same."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def _record_path() -> Path:
    return weights_dir() / RECORD


def recorded_hashes() -> dict:
    """``{tag: {role: {"sha256", "file", "source", "recorded"}}}`` from the weights folder."""
    try:
        return json.loads(_record_path().read_text())
    except (OSError, ValueError):
        return {}


def _record(tag: str, role: str, sha: str, filename: str, source: str) -> None:
    data = recorded_hashes()
    data.setdefault(tag, {})[role] = {"sha256": sha, "file": filename, "source": source,
                                      "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        atomic_write_json(_record_path(), data)
    except OSError:  # a read-only weights folder: the label is still right for this run
        pass


def parse_overrides(value: str | os.PathLike | Mapping | None, roles: list[str], filenames: dict[str, str]
                    ) -> dict[str, Path]:
    """User files: ``{role: path}``, one file (a model with one role), or a folder holding the
    tag's file names (what ``benchmark.train`` writes)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        out = {str(r): Path(p) for r, p in value.items()}
    else:
        path = Path(value)
        if path.is_dir():
            out = {r: path / filenames[r] for r in roles if (path / filenames[r]).is_file()}
            if not out:
                raise MissingWeights(f"{path} holds none of {', '.join(filenames.values())}")
        elif len(roles) == 1:
            out = {roles[0]: path}
        else:
            raise ValueError(f"this model loads {len(roles)} files ({', '.join(roles)}): give "
                             f"role=PATH for each, or a folder holding {', '.join(filenames.values())}")
    unknown = sorted(set(out) - set(roles))
    if unknown:
        raise ValueError(f"unknown weight role(s) {unknown}; roles: {', '.join(roles)}")
    for role, p in out.items():
        if not p.is_file():
            raise MissingWeights(f"weight file for role {role!r} not found: {p}")
    return out


def resolve_weights(name: str, overrides: str | os.PathLike | Mapping | None = None) -> ResolvedWeights:
    """The files ``name[.tag]`` loads: user ``overrides`` first, then the official place.

    Raises :class:`MissingWeights` naming every missing file, where the authors publish it and
    where to put it. Models without learned weights resolve to no files (label ``none``).
    """
    arch, tag_name = split_name(name)
    spec = get_spec(arch)
    tag = spec.tag(tag_name)
    full = full_name(arch, tag_name)
    if tag is None:
        return ResolvedWeights(full)
    roles = [c.role for c in tag.files]
    user = parse_overrides(overrides, roles, {c.role: c.filename for c in tag.files})
    files, missing = {}, []
    for ck in tag.files:
        path = user.get(ck.role) or official_path(arch, ck.filename)
        if path.is_file():
            files[ck.role] = path
        else:
            missing.append(ck)
    if missing:
        lines = [f"{full}: missing weight file(s):"]
        for ck in missing:
            where = f"published at {ck.url}" if ck.url else "not published by the authors (train it: benchmark.train)"
            lines.append(f"  {official_path(arch, ck.filename)}  [{ck.role}; {where}]")
        lines.append("Put the files there (or set $REFSR_WEIGHTS), or pass your own with --weights.")
        if any(ck.url or ck.download for ck in missing):
            lines.append(f"To download the published ones (on request only): python -m models.pretrained "
                         f"--fetch {full}  (or benchmark.run --download)")
        raise MissingWeights("\n".join(lines))
    known = recorded_hashes().get(full, {})
    sha, label = {}, "official"
    for ck in tag.files:
        path = files[ck.role]
        sha[ck.role] = digest = file_sha256(path)
        official = ck.sha256 or known.get(ck.role, {}).get("sha256", "")
        if not official and ck.role not in user:  # first use of the file at the official place
            _record(full, ck.role, digest, ck.filename, ck.url or str(path))
            official = digest
        if digest != official:
            label = "custom"
    if label == "custom":
        label = trained_label(files, sha) or label
    return ResolvedWeights(full, files, sha, label)


TRAIN_RECORD = "weights.json"


def trained_label(files: Mapping[str, Path], sha: Mapping[str, str]) -> str | None:
    """``trained:<run id>@<sha256[:12]>`` when every custom file sits beside the ``weights.json``
    that ``benchmark.train`` wrote for it, with the same sha256 (the file is what that run exported)."""
    runs, hashes = set(), []
    for role, path in sorted(files.items()):
        try:
            record = json.loads((Path(path).parent / TRAIN_RECORD).read_text())
            entry = record["files"][Path(path).name]
        except (OSError, ValueError, KeyError, TypeError):
            entry = None
        if entry is None:
            if _is_official_place(path):
                continue  # an official file of a partly trained tag
            return None
        if entry.get("sha256") != sha.get(role):
            return None
        runs.add(str(record.get("run_id", "")))
        hashes.append(sha[role][:12])
    return f"trained:{','.join(sorted(runs))}@{'+'.join(hashes)}" if runs and all(runs) else None


def _is_official_place(path: Path) -> bool:
    try:
        return Path(path).resolve().parent.parent == weights_dir().resolve()
    except OSError:
        return False


def load_weights(model: nn.Module, files: Mapping[str, str | os.PathLike]) -> None:
    """Load a file per role: read (``weights_only=True``), filter official keys, strict load."""
    modules = model.checkpoint_modules()
    unknown = sorted(set(files) - set(modules))
    if unknown:
        raise ValueError(f"{model.spec.name}: unknown checkpoint roles {unknown} (roles: {sorted(modules)})")
    for role, path in files.items():
        try:
            sd = model.checkpoint_filter(role, model.read_checkpoint(role, path))
            load_into(modules[role], sd)
        except CheckpointError as exc:  # the file named once: the reader's message may already name it
            text = str(exc).replace(str(path), "the file")
            raise CheckpointError(f"{path} (role {role!r}): {text}") from None


def weights_status(name: str) -> str:
    """One line for ``--list-models``: what ``name[.tag]`` would load."""
    try:
        w = resolve_weights(name)
    except MissingWeights as exc:
        return f"missing {sum(line.startswith('  ') for line in str(exc).splitlines())} file(s)"
    return {"none": "no learned weights needed", "official": "official weights found",
            "custom": "weights found, hash differs from the official record"}[w.label]
