"""``clean``: the reference unchanged (the baseline every robustness drop is measured against)."""
from __future__ import annotations

from . import register_variant
from ._base import Variant


class Clean(Variant):
    name = "clean"

    def __init__(self):
        self.params = {}

    def transform(self, inp, rng):
        return (None if inp.ref is None else inp.ref.copy()), {}


@register_variant("clean", "clean", baseline=True)
def make(arg: str | None) -> Variant:
    if arg:
        raise ValueError(f"clean takes no argument, got {arg!r}")
    return Clean()
