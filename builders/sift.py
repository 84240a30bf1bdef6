"""SIFT pair scoring: features once per image (cached), ratio-test matching, RANSAC verification.

The similarity of two photos is the number of SIFT correspondences that survive Lowe's ratio test
(exact brute-force nearest neighbours through one int8 matrix product per pair) and, by default, a
RANSAC geometric check (homography or fundamental matrix). Features are
computed once per image and reused for every pair (never per pair); they are cached in memory and,
optionally, on disk under a key made of the file's sha256 and the extraction parameters. Pair
matching runs in a process pool; results are returned in task order and the RANSAC random state is
reset per pair, so they do not depend on the number of workers.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing as mp
import os
import tempfile
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

from core.files import atomic_write_bytes

from .config import option
from .images import BadImage, read_rgb

if TYPE_CHECKING:  # imported where matching runs, so the builders' --help stays torch-free
    import torch

GEOMETRIES = ("homography", "fundamental", "none")
ESTIMATORS = ("usac", "ransac")
SCORES = ("inliers", "matches")


@dataclass(frozen=True)
class SiftParams:
    """Everything that changes features or scores; recorded in every dataset's spec."""

    max_side: int = option(1024, "images are downscaled (area) to this long side before SIFT")
    nfeatures: int = option(2000, "strongest SIFT keypoints kept per image (0 = all)")
    contrast_threshold: float = option(0.04, "SIFT contrast threshold")
    edge_threshold: float = option(10.0, "SIFT edge threshold")
    sigma: float = option(1.6, "SIFT Gaussian sigma of the first octave")
    ratio: float = option(0.8, "Lowe's ratio test")
    geometry: str = option("homography", "RANSAC model verifying matches", choices=GEOMETRIES)
    ransac_threshold: float = option(4.0, "RANSAC reprojection / epipolar error in source pixels")
    ransac_iters: int = option(2000, "RANSAC iterations")
    estimator: str = option("usac", "OpenCV USAC (seeded, 10-100x faster at low inlier ratios) or classic RANSAC",
                            choices=ESTIMATORS)
    score: str = option("inliers", "similarity = verified inliers or ratio-test matches", choices=SCORES)
    retrieval_above: int = option(50, "albums of more images verify only each image's candidate pairs: its top "
                                      "retrieval_k by a subsampled first pass of the matcher, and its top 5 by a "
                                      "VLAD descriptor (builders.retrieval); 0 = every pair always")
    retrieval_k: int = option(15, "candidates per image by the first pass in albums above retrieval_above")

    def __post_init__(self):
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, got {self.geometry!r}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")
        if self.score == "inliers" and self.geometry == "none":
            raise ValueError("score='inliers' needs a geometry (homography or fundamental)")
        for name, ok, rule in (("ratio", 0 < self.ratio < 1, "in (0, 1)"), ("max_side", self.max_side >= 32, ">= 32"),
                               ("nfeatures", self.nfeatures >= 0, ">= 0"),
                               ("retrieval_above", self.retrieval_above >= 0, ">= 0"),
                               ("retrieval_k", self.retrieval_k >= 1, ">= 1"),
                               ("ransac_threshold", self.ransac_threshold > 0, "> 0"),
                               ("ransac_iters", self.ransac_iters >= 1, ">= 1"), ("sigma", self.sigma > 0, "> 0")):
            if not ok:
                raise ValueError(f"sift.{name} must be {rule}, got {getattr(self, name)!r}")

    def extraction_key(self) -> str:
        """Digest of the parameters that change features (the disk-cache key's second half)."""
        keep = {k: v for k, v in asdict(self).items()
                if k in ("max_side", "nfeatures", "contrast_threshold", "edge_threshold", "sigma")}
        keep["opencv"] = cv2.__version__
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Features:
    """Keypoint positions (N, 2) in the source image's pixels and uint8 descriptors (N, 128)."""

    xy: np.ndarray
    desc: np.ndarray

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @cached_property
    def for_matching(self) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """What :func:`ratio_matches` needs, computed once per feature set: the descriptors minus 128
        as int8, and per descriptor d the terms that turn a dot product of shifted descriptors into a
        squared distance, ``256 sum(d-128) - |d|^2`` (int32, as one row) and
        ``|d|^2 - 256 sum(d-128) - 2 * 128^3`` (int64)."""
        import torch

        d = self.desc.astype(np.int64)
        norm2, total = (d * d).sum(1), (d - 128).sum(1)
        return (torch.from_numpy((d - 128).astype(np.int8)),
                torch.from_numpy((256 * total - norm2).astype(np.int32))[None, :], norm2 - 256 * total - 2 * 128 ** 3)


@dataclass
class PairScore:
    """Raw counts for one image pair plus the verified correspondences (for crop placement)."""

    keypoints_a: int
    keypoints_b: int
    matches: int                 # ratio-test matches
    inliers: int                 # RANSAC-verified matches (0 when geometry is 'none')
    score: int
    model: np.ndarray | None = None                       # 3x3 homography / fundamental a -> b
    pts_a: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    pts_b: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def extract(rgb: np.ndarray, params: SiftParams) -> Features:
    """SIFT on the (downscaled) gray image; keypoints mapped back to source pixel coordinates."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    s = min(1.0, params.max_side / max(h, w)) if params.max_side else 1.0
    if s < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    sift = cv2.SIFT_create(params.nfeatures, 3, params.contrast_threshold, params.edge_threshold,
                           params.sigma, cv2.CV_8U)
    kps, desc = sift.detectAndCompute(gray, None)
    if not kps:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8))
    xy = np.array([k.pt for k in kps], np.float32)
    # pixel centres: x_src + 0.5 = (x_small + 0.5) / s
    xy = ((xy + 0.5) / s - 0.5).astype(np.float32)
    return Features(xy, np.ascontiguousarray(desc, dtype=np.uint8))


class FeatureCache:
    """Features by (file sha256, extraction parameters): in memory, and on disk when ``folder`` is set.

    Disk entries are ``.npz`` files (read with ``allow_pickle=False``) written atomically
    (``core.files``): a full disk or a killed process leaves no partial entry, only possibly a hidden
    temporary file, removed by the next cache opened on the folder an hour later. An entry that
    cannot be read (truncated, garbage) is recomputed with a warning naming the file.
    """

    STALE_TEMP_SECONDS = 3600

    def __init__(self, folder: str | os.PathLike | None = None, max_items: int = 1024):
        self.folder = Path(folder) if folder else None
        self.max_items = max_items
        self.memory: dict[str, Features] = {}
        self.hits = 0
        if self.folder is not None and self.folder.is_dir():
            for tmp in self.folder.glob(".*"):   # entries are never hidden: temporaries of killed writers
                with contextlib.suppress(OSError):
                    if time.time() - tmp.stat().st_mtime > self.STALE_TEMP_SECONDS:
                        tmp.unlink()

    @staticmethod
    def key(sha: str, params: SiftParams) -> str:
        return f"{sha[:32]}-{params.extraction_key()}"

    def get(self, key: str) -> Features | None:
        if key in self.memory:
            self.hits += 1
            return self.memory[key]
        path = self.folder / f"{key}.npz" if self.folder is not None else None
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                feats = Features(z["xy"].astype(np.float32), z["desc"].astype(np.uint8))
            if feats.xy.ndim != 2 or feats.xy.shape[1] != 2 or feats.desc.shape != (len(feats), 128):
                raise ValueError(f"arrays of shapes {feats.xy.shape} and {feats.desc.shape}")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            warnings.warn(f"SIFT cache entry {path} is unreadable ({type(e).__name__}: {e}); recomputing it",
                          stacklevel=2)
            return None
        self._remember(key, feats)
        self.hits += 1
        return feats

    def _remember(self, key: str, feats: Features) -> None:
        if len(self.memory) >= self.max_items:   # bounded: a long-lived process must not grow forever
            self.memory.clear()
        self.memory[key] = feats

    def put(self, key: str, feats: Features) -> None:
        """Remember ``feats``; on disk too when possible (a failed write warns and is not fatal)."""
        self._remember(key, feats)
        if self.folder is None:
            return
        buf = io.BytesIO()
        np.savez(buf, xy=feats.xy, desc=feats.desc)
        path = self.folder / f"{key}.npz"
        try:
            atomic_write_bytes(path, buf.getvalue())
        except OSError as e:
            warnings.warn(f"could not write SIFT cache entry {path} ({e}); continuing without it", stacklevel=2)


def ratio_matches(fa: Features, fb: Features, ratio: float, device: str | torch.device | None = None) -> np.ndarray:
    """(k, 2) indices (a, b): each descriptor of ``a`` with its nearest neighbour in ``b`` when the
    second nearest is farther by more than 1 / ``ratio`` (Lowe's test; a tie fails).

    The matches of a brute-force L2 k=2 search (up to float rounding exactly at the ratio), at about
    a tenth of its cost: SIFT descriptors are uint8, so shifted by -128 they fit int8 and one int8
    matrix product (``torch._int_mm``, exact int32 sums) gives every dot product of the pair; with
    the per-descriptor terms added in the same pass, each row's best and second-best squared
    distances are one argmax and one max along the row.

    With ``device`` (e.g. ``cuda``) the same product runs there in float32, which is exact here:
    every product and partial sum is an integer below 2**24, so the matches are the same.
    """
    import torch

    if len(fa) < 2 or len(fb) < 2:
        return np.zeros((0, 2), np.int64)
    a, _, a_term = fa.for_matching
    b, b_term, _ = fb.for_matching
    if device is not None:
        dev = torch.device(device)
        u = torch.addmm(b_term.to(dev, torch.float32), a.to(dev, torch.float32), b.to(dev, torch.float32).T, alpha=2)
        top = u.topk(2, dim=1)  # a tie for the nearest fails the test whichever index topk gives
        best, nearest = top.values.cpu().numpy().astype(np.int64), top.indices[:, 0].cpu().numpy()
        return _lowe(a_term - best[:, 0], a_term - best[:, 1], nearest, ratio)
    # u[i, j] = 2 a'_i.b'_j + b_term[j];  d^2(i, j) = a_term[i] - u[i, j]  (larger u is nearer)
    u = torch._int_mm(a, b.T)
    u = torch.add(b_term, u, alpha=2, out=u).numpy()
    rows = np.arange(len(u))
    nearest = u.argmax(axis=1)
    d1 = a_term - u[rows, nearest]
    u[rows, nearest] = np.iinfo(np.int32).min
    return _lowe(d1, a_term - u.max(axis=1), nearest, ratio)


def _lowe(d1: np.ndarray, d2: np.ndarray, nearest: np.ndarray, ratio: float) -> np.ndarray:
    """(k, 2) matches of the rows whose nearest squared distance ``d1`` passes Lowe's test against the
    second nearest ``d2``."""
    query = np.flatnonzero(np.sqrt(d1) < ratio * np.sqrt(d2))
    return np.stack([query, nearest[query]], axis=1).astype(np.int64)

def match(fa: Features, fb: Features, params: SiftParams, idx: np.ndarray | None = None) -> PairScore:
    """Ratio-test matches a -> b (or the given ones), then RANSAC verification; deterministic for
    given features."""
    if len(fa) < 2 or len(fb) < 2:
        return PairScore(keypoints_a=len(fa), keypoints_b=len(fb), matches=0, inliers=0, score=0)
    return verify(fa, fb, ratio_matches(fa, fb, params.ratio) if idx is None else idx, params)


def verify(fa: Features, fb: Features, idx: np.ndarray, params: SiftParams) -> PairScore:
    """The pair's score from its (k, 2) ratio-test matches: RANSAC inliers of ``params.geometry``."""
    base = dict(keypoints_a=len(fa), keypoints_b=len(fb))
    pa, pb = fa.xy[idx[:, 0]], fb.xy[idx[:, 1]]
    model, inl = None, np.zeros(len(idx), bool)
    need = {"homography": 4, "fundamental": 8}.get(params.geometry, 0)
    if need and len(idx) >= need:
        cv2.setRNGSeed(0)   # per pair: independent of worker count and scheduling
        usac = params.estimator == "usac"
        if params.geometry == "homography":
            model, mask = cv2.findHomography(pa, pb, cv2.USAC_DEFAULT if usac else cv2.RANSAC,
                                             params.ransac_threshold, maxIters=params.ransac_iters,
                                             confidence=0.995)
        else:
            model, mask = cv2.findFundamentalMat(pa, pb, cv2.USAC_FM_8PTS if usac else cv2.FM_RANSAC,
                                                 params.ransac_threshold, 0.995, params.ransac_iters)
        if model is not None and mask is not None and model.shape == (3, 3):
            inl = mask.ravel().astype(bool)
        else:
            model = None
    elif params.geometry == "none":
        inl = np.ones(len(idx), bool)
    n_inl = int(inl.sum()) if params.geometry != "none" else 0
    score = n_inl if params.score == "inliers" else len(idx)
    return PairScore(matches=len(idx), inliers=n_inl, score=score, model=model,
                     pts_a=pa[inl].copy(), pts_b=pb[inl].copy(), **base)


# ---- parallel execution -------------------------------------------------------------------------

@dataclass
class ImageRecord:
    """One input file after reading: its hashes, size, conversions, features, or why it is unusable."""

    path: str
    sha256: str = ""
    pixel_sha256: str = ""
    size: tuple[int, int] = (0, 0)        # (height, width)
    notes: tuple[str, ...] = ()
    features: Features | None = None
    error: str = ""                        # BadImage reason when unusable
    thumb: np.ndarray | None = None        # 32x32 grayscale float32, for near-duplicate checks


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """32x32 area-averaged grayscale: what near-duplicate detection compares."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA)


def thumbnail_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) between two thumbnails: ~60 dB and up for re-encoded or resized copies of one photo,
    at most 36 dB between distinct views in the Oxford, Lund and Sacré-Cœur albums."""
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


_CACHES: dict[str | None, FeatureCache] = {}   # one per process and cache folder


def _read_and_extract(path: str, params: SiftParams, cache_dir: str | None) -> ImageRecord:
    try:
        sha = file_sha256(path)
        rgb, notes = read_rgb(path)
    except BadImage as e:
        return ImageRecord(path=path, error=e.reason)
    except OSError:
        return ImageRecord(path=path, error="unreadable")
    rec = ImageRecord(path=path, sha256=sha, pixel_sha256=hashlib.sha256(rgb.tobytes()).hexdigest(),
                      size=rgb.shape[:2], notes=tuple(notes), thumb=thumbnail(rgb))
    cache = _CACHES.setdefault(cache_dir, FeatureCache(cache_dir))
    key = FeatureCache.key(sha, params)
    rec.features = cache.get(key)
    if rec.features is None:
        rec.features = extract(rgb, params)
        cache.put(key, rec.features)
    return rec


def _pool(jobs: int, initializer=None, initargs=()):
    """A process pool that never forks a process holding OpenCV threads (that can deadlock)."""
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ctx.Pool(jobs, initializer=initializer, initargs=initargs)


_STATE: tuple | None = None
_LOADED: dict[int, Features] = {}


def _worker_init(state):
    import torch

    cv2.setNumThreads(1)   # one OpenCV / torch thread per process: the pool already uses every core
    torch.set_num_threads(1)
    global _STATE
    _STATE = state


def _extract_task(path: str) -> ImageRecord:
    params, cache_dir = _STATE
    return _read_and_extract(path, params, cache_dir)


def _features(i: int) -> Features:
    """Feature set ``i``: in memory (inline runs) or loaded once per worker from the run's folder."""
    source = _STATE[0]
    if not isinstance(source, str):
        return source[i]
    if i not in _LOADED:
        if len(_LOADED) >= 256:       # bounded memory; tasks come grouped by album
            _LOADED.clear()
        with np.load(os.path.join(source, f"{i}.npz"), allow_pickle=False) as z:
            _LOADED[i] = Features(z["xy"], z["desc"])
    return _LOADED[i]


def _match_task(pair: tuple) -> PairScore:
    """``(i, j)``, or ``(i, j, idx)`` with the ratio-test matches already made (on a GPU)."""
    return match(_features(pair[0]), _features(pair[1]), _STATE[1], *pair[2:])


def _run(fn: Callable, items: Sequence, state, jobs: int, progress: Callable | None) -> Iterator:
    """Ordered map of ``fn`` over ``items``: inline for jobs <= 1 or few items, else a process pool."""
    wrap = progress or (lambda it, total: it)
    global _STATE
    if jobs <= 1 or len(items) < 2:
        _STATE = state
        try:
            yield from wrap((fn(x) for x in items), len(items))
        finally:
            _STATE = None
        return
    chunk = max(1, len(items) // (jobs * 8))
    with _pool(jobs, _worker_init, (state,)) as pool:
        yield from wrap(pool.imap(fn, items, chunksize=chunk), len(items))


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def read_images(paths: Iterable[str | os.PathLike], params: SiftParams, jobs: int = 1,
                cache_dir: str | os.PathLike | None = None, progress: Callable | None = None
                ) -> list[ImageRecord]:
    """Read every image and compute (or load) its features once; order follows ``paths``."""
    paths = [str(p) for p in paths]
    state = (params, str(cache_dir) if cache_dir else None)
    return list(_run(_extract_task, paths, state, jobs, progress))


def score_pairs(features: Sequence[Features], pairs: Sequence[tuple[int, int]], params: SiftParams,
                jobs: int = 1, progress: Callable | None = None, device: str | None = None) -> list[PairScore]:
    """Score each (i, j) pair of ``features``; the result depends neither on ``jobs`` nor on ``device``.

    With several workers the features are handed over once through a temporary folder of ``.npz``
    files that each worker loads as it needs them (not pickled per pair). With a ``device`` other
    than the CPU, this process makes every pair's ratio-test matches there first; the workers then
    only verify them.
    """
    pairs = list(pairs)
    if device is not None:
        pairs = [(i, j, ratio_matches(features[i], features[j], params.ratio, device)) for i, j in pairs]
    if jobs <= 1 or len(pairs) < 2:
        return list(_run(_match_task, pairs, (list(features), params), 1, progress))
    with tempfile.TemporaryDirectory(prefix="refsr-sift-") as tmp:
        for i, f in enumerate(features):
            np.savez(os.path.join(tmp, f"{i}.npz"), xy=f.xy, desc=f.desc)
        return list(_run(_match_task, pairs, (tmp, params), jobs, progress))
