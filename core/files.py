"""Writing files so that a crash never leaves half of one, and placing files by link or copy."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, fsync, rename over ``path`` (mode from the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_with(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)`` on a temporary sibling, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike, link: bool = True) -> str:
    """Hard-link ``src`` at ``dst`` (copy when linking fails, e.g. across devices); return how."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dst)
            return "linked"
        except OSError:
            pass
    shutil.copyfile(src, dst)
    return "copied"


@contextlib.contextmanager
def locked(path: str | os.PathLike):
    """An exclusive advisory lock on ``path`` (created if needed) for the ``with`` block: processes
    (and threads) that take the same lock run the block one at a time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def min_free_bytes() -> int:
    """Free space a build or run needs where it writes before it starts (``$REFSR_MIN_FREE_MB``, default 256)."""
    return int(os.environ.get("REFSR_MIN_FREE_MB", "256")) * 2 ** 20


def output_problem(out: str | os.PathLike) -> str:
    """Why ``out`` (a folder to create or fill) cannot be written, or "": its nearest existing folder
    must be a folder, writable (a real probe file, so it also holds for root and read-only mounts),
    with at least :func:`min_free_bytes` free. Checked before any work, not after it."""
    out = Path(out).absolute()
    place = out if out.exists() else out.parent
    while not place.exists():
        place = place.parent
    if not place.is_dir():
        return f"cannot write {out}: {place} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=place):
            pass
    except OSError as exc:
        return f"cannot write {out}: {place} is not writable ({exc.strerror or exc})"
    free, need = shutil.disk_usage(place).free, min_free_bytes()
    if free < need:
        return (f"cannot write {out}: only {free / 2 ** 20:.0f} MiB free on {place} (at least {need / 2 ** 20:.0f} MiB "
                f"needed; $REFSR_MIN_FREE_MB)")
    return ""
