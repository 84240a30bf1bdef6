"""Opt-in downloads of published files: plain HTTP(S) with resume, Google Drive through ``gdown``.

Nothing here runs unless a command asks for it (``models.pretrained --fetch``, ``benchmark.run
--download``). A download goes into ``<file>.part`` beside its destination; an interrupted one
resumes from where it stopped with an HTTP ``Range`` request. Callers check the finished ``.part``
file and move it into place atomically (:func:`finish`), so a half or wrong file never sits under
the final name. Google Drive files and folders need the optional ``gdown`` package
(``pip install 'refsr-bench[drive]'``), imported only when a Drive link is fetched.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

USER_AGENT = "refsr-bench-fetch/0.1"
CHUNK = 1 << 20
PROGRESS_MIN_BYTES = 4 << 20  # show a progress bar from this size on (and when the size is unknown)
WEIGHT_SUFFIXES = (".pth", ".pt", ".pkl", ".ckpt", ".npz", ".npy", ".mat", ".bin", ".safetensors", ".h5",
                   ".tar", ".zip", ".gz")


class DownloadError(RuntimeError):
    """A download that failed; the message says why (HTTP status, size, missing package)."""


class GdownMissing(DownloadError):
    """A Google Drive link while the optional ``gdown`` package is not installed."""


def part_path(dest: str | os.PathLike) -> Path:
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# -- what kind of link ---------------------------------------------------------------------------

def drive_kind(url: str) -> str | None:
    """``"folder"`` / ``"file"`` for a Google Drive link, else None."""
    host = urllib.parse.urlsplit(url).netloc.lower()
    if host not in ("drive.google.com", "docs.google.com", "drive.usercontent.google.com"):
        return None
    return "folder" if "/folders/" in url else "file"


def is_direct_file_url(url: str, filename: str = "") -> bool:
    """Whether ``url`` looks like a file rather than a web page: a plain http(s) link whose last
    path segment is the file's name or has a weight-file suffix (GitHub ``tree``/``blob`` pages and
    links with prose or anchors are pages)."""
    if not re.fullmatch(r"https?://\S+", url or "") or "#" in url:
        return False
    parts = urllib.parse.urlsplit(url)
    if parts.netloc.lower() == "github.com" and re.search(r"/(tree|blob)/", parts.path):
        return False
    last = parts.path.rsplit("/", 1)[-1]
    return bool(last) and (last == filename or last.lower().endswith(WEIGHT_SUFFIXES))


# -- HTTP ------------------------------------------------------------------------------------------

def _progress(total: int | None, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    show = enabled and (total is None or total >= PROGRESS_MIN_BYTES)
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=None if show else True, file=sys.stderr, leave=False)


def _total_from_content_range(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", value or "")
    return int(m.group(1)) if m else None


def http_download(url: str, part: str | os.PathLike, *, timeout: float = 60.0, progress: bool = True,
                  desc: str = "", expected_size: int | None = None) -> Path:
    """Download ``url`` into ``part``, resuming what is already there (HTTP ``Range``); return it.

    Raises :class:`DownloadError` with the HTTP status, a size that does not match, a web page
    where a file was expected, or a lost connection (the ``.part`` file is kept: running again
    resumes it)."""
    part = Path(part)
    part.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):  # the second pass restarts from zero when a resume is impossible
        start = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and start:  # nothing after `start`: complete already, or a stale part
                total = _total_from_content_range(exc.headers.get("Content-Range"))
                if total == start:
                    return part
                part.unlink()
                continue
            raise DownloadError(f"HTTP {exc.code} {exc.reason} from {url}") from None
        except urllib.error.URLError as exc:
            raise DownloadError(f"cannot reach {url}: {exc.reason}") from None
        except (TimeoutError, OSError) as exc:
            raise DownloadError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
        with resp:
            ctype = resp.headers.get("Content-Type", "")
            if ctype.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
                raise DownloadError(f"{url} answered with a web page ({ctype}), not a file: download it by hand")
            if resp.status == 206:
                m = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
                if not m or int(m.group(1)) != start:
                    part.unlink()  # the server resumed somewhere else: start again
                    continue
                total = int(m.group(2)) if m.group(2) != "*" else None
                mode = "ab"
            else:  # 200: the whole file (a server without Range support starts over)
                start, mode = 0, "wb"
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            if expected_size is not None and total is not None and total != expected_size:
                raise DownloadError(f"{url}: the server announces {total} bytes, expected {expected_size}")
            got = start
            with open(part, mode) as f, _progress(total, start, desc or part.name, progress) as bar:
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except (OSError, ValueError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
                        f.flush()
                        raise DownloadError(f"{url}: connection lost after {got} of {total or '?'} bytes "
                                            f"({type(exc).__name__}); {part} is kept: run the command again "
                                            f"to resume") from None
                    if not block:
                        break
                    f.write(block)
                    got += len(block)
                    bar.update(len(block))
                f.flush()
                os.fsync(f.fileno())
        size = part.stat().st_size
        if total is not None and size != total:
            raise DownloadError(f"{url}: wrong size: got {size} bytes, expected {total}; {part} is kept: "
                                f"run the command again to resume")
        if expected_size is not None and size != expected_size:
            part.unlink()
            raise DownloadError(f"{url}: wrong size: got {size} bytes, expected {expected_size}")
        return part
    raise DownloadError(f"{url}: the server did not resume the download correctly; try again")


# -- Google Drive (optional gdown) -----------------------------------------------------------------

def import_gdown(url: str, filename: str, dest: str | os.PathLike):
    """The ``gdown`` module, or :class:`GdownMissing` saying how to get it or the file."""
    try:
        import gdown
    except ImportError:
        raise GdownMissing(
            f"{filename} is published on Google Drive ({url}); fetching Google Drive files needs the "
            f"optional package gdown, which is not installed. Install it with "
            f"`pip install 'refsr-bench[drive]'` (or `pip install gdown`) and run the command again, "
            f"or download {filename} by hand from {url} and put it at {dest}") from None
    return gdown


def _gdown_file(gdown, url: str, part: Path, progress: bool) -> None:
    kwargs = dict(output=str(part), quiet=not progress)
    try:
        out = gdown.download(url=url, fuzzy=True, resume=True, **kwargs)
    except TypeError:  # an old gdown without fuzzy/resume
        out = gdown.download(url=url, **kwargs)
    if not out or not part.is_file():
        raise DownloadError(f"gdown could not download {url} (see its message above; Google Drive limits "
                            f"downloads of popular files: try later or download it by hand)")


def drive_download(url: str, filename: str, part: str | os.PathLike, *, progress: bool = True) -> Path:
    """Fetch ``filename`` from a Google Drive file link, or from a Drive folder that holds it,
    into ``part`` with ``gdown``."""
    part = Path(part)
    part.parent.mkdir(parents=True, exist_ok=True)
    gdown = import_gdown(url, filename, part.with_name(filename))
    if drive_kind(url) == "file":
        _gdown_file(gdown, url, part, progress)
        return part
    try:  # gdown >= 5.1 lists a folder without downloading it
        listing = gdown.download_folder(url=url, skip_download=True, quiet=not progress, use_cookies=False)
    except TypeError:
        listing = None
    if listing is not None:
        match = [f for f in listing if Path(getattr(f, "path", "") or getattr(f, "local_path", "")).name == filename]
        if not match:
            names = sorted(Path(getattr(f, "path", "") or f.local_path).name for f in listing)
            raise DownloadError(f"the Google Drive folder {url} holds no file named {filename} "
                                f"(it holds: {', '.join(names) or 'nothing visible'})")
        _gdown_file(gdown, f"https://drive.google.com/uc?id={match[0].id}", part, progress)
        return part
    with tempfile.TemporaryDirectory(dir=part.parent, prefix=".gdown-") as tmp:  # old gdown: whole folder
        files = gdown.download_folder(url=url, output=tmp, quiet=not progress, use_cookies=False)
        if not files:
            raise DownloadError(f"gdown could not download the Google Drive folder {url}")
        found = [p for p in Path(tmp).rglob(filename) if p.is_file()]
        if not found:
            raise DownloadError(f"the Google Drive folder {url} holds no file named {filename}")
        shutil.move(str(found[0]), part)
    return part


def download(url: str, dest: str | os.PathLike, *, timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch ``url`` (a direct file or a Google Drive link) into ``dest``'s ``.part`` file and
    return that; the caller checks it and calls :func:`finish`."""
    dest = Path(dest)
    part = part_path(dest)
    if drive_kind(url):
        return drive_download(url, dest.name, part, progress=progress)
    return http_download(url, part, timeout=timeout, progress=progress, desc=dest.name)


def finish(part: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Move a checked ``.part`` file to ``dest`` atomically (same folder, ``os.replace``)."""
    part, dest = Path(part), Path(dest)
    os.chmod(part, 0o644)
    os.replace(part, dest)
    return dest


def install_checked(part: str | os.PathLike, dest: str | os.PathLike, check) -> str:
    """Check a downloaded ``.part`` under ``dest``'s suffix (readers may go by it) with
    ``check(path, sha256)``, which raises to refuse it; on success move it to ``dest``. Returns the
    sha256. A refused file never reaches ``dest`` and is deleted."""
    dest = Path(dest)
    checking = dest.with_name(f".{dest.stem}.checking{dest.suffix}")
    os.replace(part, checking)
    try:
        digest = sha256_file(checking)
        check(checking, digest)
        finish(checking, dest)
    finally:
        checking.unlink(missing_ok=True)
    return digest
