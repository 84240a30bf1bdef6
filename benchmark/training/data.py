"""The training loader over the dataset contract: HR crop, reference crop, LR by the protocol's kernel
(or, for a recipe with ``pairs``, an HR crop and its copy under a known random homography).

Every random choice of a sample (which crop, flips, rotations, jitter, shuffled reference) is drawn
from ``keyed_rng(seed, "sample", step, slot)``, and the order of the split from
``keyed_rng(seed, "epoch", epoch)``: a batch is a pure function of (seed, step). So the data of
step ``k`` is the same whatever the number of workers or processes, and a resumed run needs only
the step to continue exactly (the "data position" of a checkpoint).

With ``world`` processes the global batch of a step is cut into ``world`` equal slices; process
``rank`` loads slice ``rank`` (so one process with batch B and two with B/2 see the same crops).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset as TorchDataset, Sampler

from builders.images import read_rgb
from builders.manifest import Dataset
from core.seeding import keyed_rng

from ..protocol import Protocol, load_protocol


@dataclass(frozen=True)
class Item:
    index: int  # row of the train table
    step: int
    slot: int  # position in the global batch


def train_table(ds: Dataset, split: str = "train"):
    """Rows usable for training: the split's samples that have a reference."""
    df = ds.samples(split=split)
    df = df[df["ref"] != ""]
    if df.empty:
        have = sorted(ds.manifest["split"].unique())
        raise ValueError(f"{ds.root}: no {split!r} samples with a reference (splits: {have}); build one with "
                         f"builders.build --split train|both")
    return df.reset_index(drop=True)


class StepBatchSampler(Sampler):
    """Yields this process's share of the global batch of every step from ``start`` to ``stop``."""

    def __init__(self, n: int, batch: int, seed: int, start: int, stop: int, rank: int = 0, world: int = 1):
        if batch % world:
            raise ValueError(f"global batch {batch} does not split evenly over {world} processes")
        self.n, self.batch, self.seed, self.start, self.stop = n, batch, seed, start, stop
        self.rank, self.world = rank, world
        self.steps_per_epoch = steps_per_epoch(n, batch)
        self._perm: tuple[int, np.ndarray] | None = None

    def global_indices(self, step: int) -> np.ndarray:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            rng = keyed_rng(self.seed, "epoch", str(epoch))
            reps = math.ceil(self.batch / self.n)  # a split smaller than a batch is repeated
            self._perm = (epoch, np.concatenate([rng.permutation(self.n) for _ in range(reps)]))
        return self._perm[1][pos * self.batch:(pos + 1) * self.batch]

    def __iter__(self):
        local = self.batch // self.world
        for step in range(self.start, self.stop):
            idx = self.global_indices(step)
            lo = self.rank * local
            yield [Item(int(idx[s]), step, s) for s in range(lo, lo + local)]

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def steps_per_epoch(n: int, batch: int) -> int:
    return max(1, n // batch)


def _fit(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random size x size crop (zero padding bottom/right where the image is smaller)."""
    h, w = img.shape[:2]
    y = int(rng.integers(0, h - size + 1)) if h > size else 0
    x = int(rng.integers(0, w - size + 1)) if w > size else 0
    out = img[y:y + size, x:x + size]
    if out.shape[0] < size or out.shape[1] < size:
        pad = np.zeros((size, size, 3), np.uint8)
        pad[:out.shape[0], :out.shape[1]] = out
        out = pad
    return np.ascontiguousarray(out)


def _geometric(imgs: list[np.ndarray], aug: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """The same flips and rotation for every image of ``imgs`` (HR and its LR, or the reference)."""
    hf = rng.random() < aug.get("hflip", 0)
    vf = rng.random() < aug.get("vflip", 0)
    k = int(rng.integers(0, 4)) if rng.random() < aug.get("rot90", 0) else 0
    tr = rng.random() < aug.get("transpose", 0)
    out = []
    for im in imgs:
        if hf:
            im = im[:, ::-1]
        if vf:
            im = im[::-1]
        if k:
            im = np.rot90(im, k)
        if tr:
            im = im.transpose(1, 0, 2)
        out.append(np.ascontiguousarray(im))
    return out


def color_jitter(img: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """``cv2.convertScaleAbs``: saturate(|alpha * x + beta|) (MASA-SR's training jitter)."""
    return np.clip(np.abs(img.astype(np.float32) * alpha + beta).round(), 0, 255).astype(np.uint8)


class TrainCrops(TorchDataset):
    """(HR, LR, Ref) float tensors in [0, 1] for :class:`Item` s, drawn as the recipe says."""

    def __init__(self, ds: Dataset, table, protocol: str | Protocol, scale: int, crop_size: int, ref_size: int,
                 augment: dict, seed: int, steps_per_epoch: int, split: str = "train", pairs: dict | None = None):
        self.root = ds.root
        self.hr = list(table["hr"])
        self.ref = list(table["ref"])
        self.ds = ds
        self.protocol = load_protocol(protocol) if not isinstance(protocol, Protocol) else protocol
        self.scale, self.crop, self.ref_size = scale, crop_size, ref_size
        self.aug, self.seed, self.spe = dict(augment), seed, steps_per_epoch
        self.pairs = dict(pairs or {})  # the recipe's ``pairs``: synthetic warped pairs instead of HR + reference
        if crop_size % scale:
            raise ValueError(f"crop_size {crop_size} is not a multiple of the scale {scale}")

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, item: Item) -> dict[str, torch.Tensor]:
        aug = self.aug
        rng = keyed_rng(self.seed, "sample", str(item.step), str(item.slot))
        if self.pairs:
            return self._warped_pair(item, rng)
        hr = read_rgb(self.ds.path(self.hr[item.index]))[0]
        ref = read_rgb(self.ds.path(self.ref[item.index]))[0]
        if rng.random() < aug.get("swap", 0):
            hr, ref = ref, hr
        hr = _fit(hr, self.crop, rng)
        ref = _fit(ref, self.ref_size, rng)
        jit = aug.get("color_jitter")
        if jit and rng.random() < jit.get("p", 1.0):
            a = float(rng.uniform(*jit.get("alpha", (1.0, 1.0))))
            b = float(rng.uniform(*jit.get("beta", (0.0, 0.0))))
            on = jit.get("target", "ref")
            if on == "either":
                on = "ref" if rng.random() < 0.5 else "hr"
            if on == "ref":
                ref = color_jitter(ref, a, b)
            else:
                hr = color_jitter(hr, a, b)
        hr, lr = self.protocol.make_pair(hr, self.scale)
        if lr.shape[0] * self.scale != hr.shape[0] or lr.shape[1] * self.scale != hr.shape[1]:
            raise ValueError(f"crop_size {self.crop} does not fit protocol {self.protocol.name} (its HR "
                             f"multiple is {self.protocol.hr.multiple}): choose a multiple of it")
        if item.step // self.spe >= int(aug.get("geometric_from_epoch", 0) or 0):
            if aug.get("ref_independent", True):
                hr, lr = _geometric([hr, lr], aug, rng)
                (ref,) = _geometric([ref], aug, rng)
            else:
                hr, lr, ref = _geometric([hr, lr, ref], aug, rng)
        sh = aug.get("shuffle_ref")
        if sh and rng.random() < sh.get("p", 1.0):
            ref = shuffle_reference(ref, int(sh.get("grid", 5)), sh.get("remainder", "zero"), rng)
        return {"hr": _tensor(hr), "lr": _tensor(lr), "ref": _tensor(ref)}

    def _warped_pair(self, item: Item, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """C2-Matching's contrastive data: an HR crop (flips/transpose as the recipe says) as a warped pair
        (:func:`warped_sample`). The sample's reference crop is not used (the official ContrasDataset reads
        only the input image)."""
        hr = _fit(read_rgb(self.ds.path(self.hr[item.index]))[0], self.crop, rng)
        (hr,) = _geometric([hr], self.aug, rng)
        return warped_sample(hr, self.pairs, self.protocol, self.scale, rng)


def warped_sample(hr: np.ndarray, pairs: dict, protocol: Protocol, scale: int, rng: np.random.Generator
                  ) -> dict[str, torch.Tensor]:
    """``hr`` and its copy under a random homography (``ref``), ``flow`` = where every HR pixel lands in the
    copy, the protocol's LR, and ``query``: the image the extractor's first branch sees (``pairs.input``:
    the HR, or the PIL-bicubic upsampled LR)."""
    from core.resize import pil_bicubic

    ref, flow = homography_pair(hr, pairs.get("perturb", (0, 10)), int(pairs.get("window", hr.shape[0])), rng)
    hr, lr = protocol.make_pair(hr, scale)
    query = hr if pairs.get("input", "hr") == "hr" else pil_bicubic(lr, hr.shape[:2])
    return {"hr": _tensor(hr), "lr": _tensor(lr), "ref": _tensor(ref), "query": _tensor(query),
            "flow": torch.from_numpy(flow)}


def homography_pair(img: np.ndarray, perturb, window: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``img`` warped by a random homography, and the (H, W, 2) float64 [x, y] position in the warped image
    of every pixel of ``img`` (C2-Matching's ``image_pair_generation``: the corners of a ``window``-sided
    square with its top-left corner uniform in [hi, max(w, w - window - hi)) move by a uniform integer in
    [lo, hi) of random sign each; bilinear warp, zero outside; the warped image stays float, unrounded)."""
    import cv2

    lo, hi = (int(v) for v in perturb)
    h, w = img.shape[:2]
    x0 = int(rng.integers(hi, max(w, w - window - hi)))
    y0 = int(rng.integers(hi, max(h, h - window - hi)))
    square = np.float32([[x0, y0], [x0 + window, y0], [x0 + window, y0 + window], [x0, y0 + window]])
    moved = square + rng.integers(lo, hi, size=(4, 2)) * rng.choice([-1.0, 1.0], size=(4, 2))
    inverse = np.linalg.inv(cv2.getPerspectiveTransform(square, moved.astype(np.float32)))
    warped = cv2.warpPerspective(img.astype(np.float32), inverse, (w, h))
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    pts = inverse @ np.stack([xs.ravel(), ys.ravel(), np.ones(h * w)]).astype(np.float64)
    flow = (pts[:2] / pts[2]).T.reshape(h, w, 2)
    return warped, np.ascontiguousarray(flow)


def shuffle_reference(ref: np.ndarray, grid: int, remainder: str, rng: np.random.Generator) -> np.ndarray:
    """FRFSR's shuffled reference (the ``shuffle`` variant's code, used as a training augmentation)."""
    from builders.variants._base import VariantInput
    from builders.variants.shuffle import Shuffle

    out, _ = Shuffle(grid, remainder).transform(VariantInput("train", 1, ref, ref=ref), rng)
    return out


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1).float().div_(255.0)


def _collate(batch: list[dict]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([b[k] for b in batch]) for k in batch[0]}


def make_loader(crops: TrainCrops, sampler: StepBatchSampler, workers: int = 0, pin_memory: bool = False
                ) -> DataLoader:
    return DataLoader(crops, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      collate_fn=_collate, persistent_workers=False, prefetch_factor=4 if workers else None)


def loader_throughput(loader: DataLoader, batches: int = 20) -> float:
    """Crops per second the loader delivers on its own (for comparing with the model's steps/s)."""
    n, t0 = 0, time.perf_counter()
    for i, b in enumerate(loader):
        n += b["hr"].shape[0]
        if i + 1 >= batches:
            break
    return n / max(time.perf_counter() - t0, 1e-9)
