"""The embedded default corpus: real photos that ship inside the scikit-image wheel, made into albums.

Each album holds one real photo and several synthetic "other photographs" of the same scene (crop
and zoom, rotation, perspective, illumination and colour change, a distant blurred view), in
growing order of difference, like the views of one event in a CUFED album. The motorcycle album
also holds the real second view of scikit-image's stereo pair. The albums then go through the real
CUFED5-style builder; nothing here assigns levels.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .images import read_rgb, write_png

#: album name -> photo files in ``skimage/data`` (the first is the base view).
SCENES = {
    "astronaut": ("astronaut.png",),
    "chelsea": ("chelsea.png",),
    "coffee": ("coffee.png",),
    "rocket": ("rocket.jpg",),
    "motorcycle": ("motorcycle_left.png", "motorcycle_right.png"),
}
MAX_SIDE = 480


def skimage_data_dir() -> Path:
    import skimage.data

    return Path(os.path.dirname(skimage.data.__file__))


def _fit(img: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    h, w = img.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return img
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def _affine(img: np.ndarray, angle: float, zoom: float, shift: tuple[float, float]) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, zoom)
    m[:, 2] += (shift[0] * w, shift[1] * h)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)


def _perspective(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-strength, strength, size=(4, 2)) * np.float32([w, h])
    dst = (src + jitter).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)


def _light(img: np.ndarray, gain: tuple[float, float, float], gamma: float) -> np.ndarray:
    x = img.astype(np.float32) / 255.0
    x = np.clip(x ** gamma * np.float32(gain), 0, 1)
    return np.round(x * 255).astype(np.uint8)


def synthetic_views(base: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Five views of ``base``, from a small change to a large one."""
    return [
        _light(_affine(base, rng.uniform(-3, 3), 1.12, (0.04, -0.03)), (1.03, 1.0, 0.97), 0.95),
        _affine(base, rng.uniform(8, 12), 1.3, (-0.08, 0.06)),
        _light(_perspective(base, 0.12, rng), (0.9, 0.95, 1.1), 1.25),
        _light(_affine(base, rng.uniform(-25, -18), 0.75, (0.15, 0.1)), (1.2, 1.05, 0.85), 0.7),
        cv2.GaussianBlur(_perspective(_affine(base[:, ::-1], 35, 0.55, (0.2, -0.2)), 0.2, rng), (0, 0), 2.0),
    ]


def make_albums(out: str | os.PathLike, seed: int = 0) -> Path:
    """Write the demo albums under ``out`` (one folder per scene) and return ``out``."""
    out = Path(out)
    src = skimage_data_dir()
    for album, files in SCENES.items():
        rng = np.random.default_rng([seed, len(album), sum(map(ord, album))])
        photos = [_fit(read_rgb(src / f)[0]) for f in files]
        views = photos + synthetic_views(photos[0], rng)
        for i, view in enumerate(views):
            write_png(out / album / f"view_{i}.png", np.ascontiguousarray(view))
    return out


#: unrelated scikit-image photos: the demo's irrelevant-reference pool (CUFEDR-style).
POOL = ("ihc.png", "hubble_deep_field.jpg", "retina.jpg", "color.png")


def make_pool(out: str | os.PathLike) -> Path:
    """Write the irrelevant-reference pool (photos unrelated to every demo album)."""
    out = Path(out)
    src = skimage_data_dir()
    for f in POOL:
        write_png(out / (Path(f).stem + ".png"), _fit(read_rgb(src / f)[0]))
    return out
