"""Reading and writing images for builders, with a named reason for every input that is unusual.

``read_rgb`` returns 8-bit RGB and the list of conversions it made (grayscale, alpha, 16-bit), so
reports can count them; an unreadable file raises :class:`BadImage` with the reason.
"""
from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class BadImage(ValueError):
    """An input that cannot be used; ``reason`` is a short key for build reports."""

    def __init__(self, reason: str, path: str | os.PathLike, detail: str = ""):
        super().__init__(f"{path}: {reason}{' (' + detail + ')' if detail else ''}")
        self.reason, self.path, self.detail = reason, str(path), detail


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


#: images with more pixels than this are refused from their header, before decoding
#: (``$REFSR_MAX_PIXELS``; default 200 MP, well above any camera photo)
MAX_PIXELS = int(os.environ.get("REFSR_MAX_PIXELS", 200_000_000))

#: EXIF orientation -> the numpy operation that makes the pixels upright (as PIL's exif_transpose)
_ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, *range(2, a.ndim)), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, *range(2, a.ndim)), 8: lambda a: np.rot90(a, 1),
}


def _header(path: str | os.PathLike) -> tuple[tuple[int, int] | None, int]:
    """(width, height) and EXIF orientation from the file header, without decoding the pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                orientation = im.getexif().get(0x0112, 1)
                return im.size, int(orientation) if isinstance(orientation, int) else 1
    except Image.DecompressionBombError as exc:  # PIL's own refusal: over twice its 179 MP limit
        raise BadImage("too-many-pixels", path, str(exc).split(",")[0]) from None
    except (OSError, ValueError, SyntaxError, struct.error):
        return None, 1


def read_rgb(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read an image as uint8 RGB (H, W, 3), upright per its EXIF orientation; return it with the
    conversions applied. An image over :data:`MAX_PIXELS` is refused from its header."""
    size, orientation = _header(path)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise BadImage("too-many-pixels", path, f"{size[0]}x{size[1]} > {MAX_PIXELS} pixels ($REFSR_MAX_PIXELS)")
    data = np.fromfile(str(path), dtype=np.uint8)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as exc:  # e.g. OpenCV's own pixel limit
        raise BadImage("unreadable", path, str(exc).strip().splitlines()[-1][:120]) from None
    if img is None:
        raise BadImage("unreadable", path, "not a decodable image")
    notes: list[str] = []
    if orientation in _ORIENT:
        img = np.ascontiguousarray(_ORIENT[orientation](img))
        notes.append("exif-rotated")
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
        notes.append("16-bit")
    elif img.dtype != np.uint8:
        raise BadImage("unsupported-dtype", path, str(img.dtype))
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        notes.append("grayscale")
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        notes.append("alpha")
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise BadImage("unsupported-channels", path, f"{img.shape[2]} channels")
    return np.ascontiguousarray(img), notes


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write uint8 RGB as PNG (lossless, deterministic bytes for identical pixels)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_png wants uint8 (H,W,3), got {rgb.dtype} {rgb.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise OSError(f"could not encode {path}")
    Path(path).write_bytes(buf.tobytes())
