"""Placing an HR crop and its reference crop through verified SIFT correspondences.

Boxes are ``(x, y, w, h)`` in source-image pixels. A reference crop is placed either through the
pair's homography (the HR crop's centre mapped into the reference) or, without a usable model,
at the median position of the verified matches that fall inside the HR crop. A crop pair counts as
*verified* when enough verified correspondences lie inside both crops (and, for a homography, the
projected HR crop overlaps the reference crop enough).
"""
from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]


def clamp_box(cx: float, cy: float, size: int, shape: tuple[int, int]) -> Box | None:
    """A size×size box centred near (cx, cy), moved inside an image of ``shape`` (None if it cannot fit)."""
    h, w = shape
    if h < size or w < size:
        return None
    x = int(min(max(round(cx - size / 2), 0), w - size))
    y = int(min(max(round(cy - size / 2), 0), h - size))
    return x, y, size, size


def inside(pts: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return (pts[:, 0] >= x) & (pts[:, 0] < x + w) & (pts[:, 1] >= y) & (pts[:, 1] < y + h)


def shared_inliers(pts_a: np.ndarray, pts_b: np.ndarray, box_a: Box, box_b: Box) -> int:
    """Verified correspondences with one end inside each box."""
    if len(pts_a) == 0:
        return 0
    return int((inside(pts_a, box_a) & inside(pts_b, box_b)).sum())


def project_box(h_ab: np.ndarray, box: Box) -> np.ndarray | None:
    """The box's corners mapped by a homography (4, 2), or None when the mapping is degenerate."""
    x, y, w, h = box
    corners = np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]).reshape(-1, 1, 2)
    out = cv2.perspectiveTransform(corners, h_ab.astype(np.float64))
    poly = out.reshape(4, 2).astype(np.float32)
    if not np.isfinite(poly).all() or cv2.contourArea(poly) <= 1 or not cv2.isContourConvex(poly):
        return None
    return poly


def overlap(poly: np.ndarray, box: Box) -> float:
    """Share of the reference box covered by the projected HR crop."""
    x, y, w, h = box
    rect = np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    area, _ = cv2.intersectConvexConvex(poly, rect)
    return float(area) / float(w * h)


def place_by_homography(h_ab: np.ndarray, hr_box: Box, ref_shape: tuple[int, int], size: int
                        ) -> tuple[Box | None, float]:
    """Reference box centred on where the HR crop's content is, and its overlap with that content."""
    poly = project_box(h_ab, hr_box)
    if poly is None:
        return None, 0.0
    cx, cy = poly.mean(axis=0)
    box = clamp_box(cx, cy, size, ref_shape)
    return (box, overlap(poly, box)) if box is not None else (None, 0.0)


def place_by_matches(pts_a: np.ndarray, pts_b: np.ndarray, hr_box: Box, ref_shape: tuple[int, int],
                     size: int) -> Box | None:
    """Reference box centred on the median match of the HR crop's verified correspondences."""
    sel = inside(pts_a, hr_box) if len(pts_a) else np.zeros(0, bool)
    if not sel.any():
        return None
    cx, cy = np.median(pts_b[sel], axis=0)
    return clamp_box(float(cx), float(cy), size, ref_shape)


def cut(img: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return np.ascontiguousarray(img[y:y + h, x:x + w])
