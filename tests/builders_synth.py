"""Tiny synthetic albums for builder tests: views of one random texture under growing change."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def texture(seed: int, h: int = 240, w: int = 320) -> np.ndarray:
    """A random RGB texture with blobs and edges at several scales (gives real SIFT matches)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for cell in (4, 10, 24):
        small = rng.uniform(0, 255, (h // cell + 1, w // cell + 1, 3)).astype(np.float32)
        img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[:h, :w] / 3
    for _ in range(40):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.circle(img, (x, y), int(rng.integers(3, 15)), c, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def warp(img: np.ndarray, angle: float, zoom: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotated/zoomed/shifted view and the 3x3 map from ``img`` pixels to view pixels."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, zoom)
    m[:, 2] += (shift * w, shift * h)
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    return out, np.vstack([m, [0, 0, 1]])


#: (angle, zoom, shift): view k of an album is more different from view 0 as k grows.
VIEWS = [(0, 1.0, 0.0), (4, 1.05, 0.02), (15, 1.25, 0.08), (30, 1.5, 0.15), (50, 1.9, 0.2), (75, 2.4, 0.25)]


def make_album(folder: Path, seed: int, views=VIEWS) -> list[np.ndarray]:
    """Write ``img0.png`` … ``imgK.png`` (view k of one texture); return the homographies 0 -> k."""
    folder.mkdir(parents=True, exist_ok=True)
    base = texture(seed)
    maps = []
    for k, (angle, zoom, shift) in enumerate(views):
        view, m = warp(base, angle, zoom, shift)
        cv2.imwrite(str(folder / f"img{k}.png"), view[:, :, ::-1])
        maps.append(m)
    return maps


def make_albums(root: Path, n: int = 2) -> Path:
    for a in range(n):
        make_album(root / f"album{a}", seed=100 + a)
    return root
