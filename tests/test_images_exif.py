"""Inputs are read upright (EXIF orientation) and oversized headers are refused before decoding."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from builders.images import BadImage, read_rgb


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pil(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    rgb = np.repeat(np.repeat(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8), 8, 0), 8, 1)  # 48 x 80
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(path, quality=95, exif=exif.tobytes())
    got, notes = read_rgb(path)
    want = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 2  # two JPEG decoders
    assert ("exif-rotated" in notes) == (orientation != 1)
    if orientation == 6:
        assert got.shape[:2] == (80, 48)  # a portrait photo stays portrait


def test_a_74_byte_png_claiming_100000_squared_is_refused_from_its_header(tmp_path):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    path = tmp_path / "bomb.png"
    path.write_bytes(header + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    with pytest.raises(BadImage) as e:
        read_rgb(path)
    assert e.value.reason == "too-many-pixels" and "10000000000 pixels" in str(e.value)


def test_the_pixel_limit_is_configurable(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setattr("builders.images.MAX_PIXELS", 599)
    with pytest.raises(BadImage, match="30x20 > 599 pixels"):
        read_rgb(tmp_path / "a.png")
