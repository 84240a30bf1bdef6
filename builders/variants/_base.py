"""What a robustness variant is: a pure function of (sample, level, seeded generator) -> reference.

The evaluation harness calls variants on the fly and ``builders.variant`` writes them to disk; both
go through :func:`get_variant` and draw randomness only from :func:`variant_rng`, so a variant's
output depends on nothing but its inputs, its canonical name and the seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.seeding import keyed_rng


class VariantError(ValueError):
    """A sample a variant cannot transform; ``reason`` is a short key for reports."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason


@dataclass(frozen=True)
class VariantInput:
    """One sample as a variant sees it. Arrays are uint8 RGB (H, W, 3) and are never modified.

    ``refs`` holds the other references of the sample's group in level order (only the ``stitch``
    variant reads it); ``lr`` is the low-resolution input when the caller already has one.
    """

    sample_id: str
    level: int
    hr: np.ndarray
    ref: np.ndarray | None = None
    lr: np.ndarray | None = None
    scale: int = 4
    refs: tuple[np.ndarray, ...] = field(default_factory=tuple)


class Variant:
    """Base class: subclasses set ``name`` (canonical, re-parseable) and ``params`` and implement
    :meth:`transform`; :meth:`apply` checks inputs and outputs around it."""

    name: str
    params: dict[str, Any]
    #: True when the variant reads ``VariantInput.refs`` (callers load the group's references).
    uses_group_refs: bool = False

    def apply(self, inp: VariantInput, rng: np.random.Generator) -> tuple[np.ndarray | None, dict]:
        """Return ``(new_reference, record)``; ``record`` holds every sampled parameter (JSON-ready)."""
        for key, arr in (("hr", inp.hr), ("ref", inp.ref), ("lr", inp.lr), *(("refs", r) for r in inp.refs)):
            if arr is not None:
                check_rgb(arr, key)
        out, record = self.transform(inp, rng)
        if out is not None:
            check_rgb(out, "output")
        return out, record

    def transform(self, inp: VariantInput, rng: np.random.Generator) -> tuple[np.ndarray | None, dict]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Variant({self.name!r})"


def check_rgb(arr: np.ndarray, what: str) -> None:
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        shape = getattr(arr, "shape", None)
        raise TypeError(f"{what} must be uint8 (H, W, 3), got {getattr(arr, 'dtype', type(arr))} {shape}")


def require_ref(inp: VariantInput) -> np.ndarray:
    if inp.ref is None:
        raise VariantError("no-reference", f"{inp.sample_id} has no reference to transform")
    return inp.ref


def variant_rng(seed: int, sample_id: str, name: str) -> np.random.Generator:
    """A generator seeded from sha256(seed, sample_id, variant name): stable across runs and machines
    and independent of the order samples are processed in."""
    return keyed_rng(seed, sample_id, name)


def uniform(rng: np.random.Generator, lo: float, hi: float, digits: int = 6) -> float:
    """A uniform draw rounded to ``digits`` decimals, so the recorded value is exactly the one used."""
    return round(float(rng.uniform(lo, hi)), digits)


def sign(rng: np.random.Generator) -> int:
    return 1 if rng.integers(0, 2) else -1
