"""Robustness variants of a dataset's references, by name: ``get_variant("shuffle:4")``.

Each module in this package registers one variant with :func:`register_variant`; a new variant is
one new file. Names are ``name[:arg]``; ``Variant.name`` is the canonical spelling (aliases such as
``shuffle:medium`` resolve to ``shuffle:4``), which is what manifests record and what seeds the rng.
Variants declare what they are (``baseline``: the unmodified reference; ``fallback``: what a
sample without a reference is scored with) instead of being recognised by name.
"""
from __future__ import annotations

from collections.abc import Callable

from core.registry import Registry

from ._base import Variant, VariantError, VariantInput, variant_rng

__all__ = ["VARIANTS", "Variant", "VariantError", "VariantInput", "variant_rng", "get_variant", "list_variants",
           "variant_usage", "register_variant", "baseline_variant", "fallback_variant", "is_baseline"]

VARIANTS = Registry("variant", __name__, brief=lambda entry: dict(entry.info))


def register_variant(name: str, usage: str, baseline: bool = False, fallback: bool = False,
                     pool: bool = False, example: str | None = None) -> Callable:
    """Register ``factory(arg: str | None) -> Variant`` under ``name``; ``usage`` is its CLI syntax.

    ``baseline``: the variant that leaves references as they are (what robustness drops are
    measured against); ``fallback``: the variant samples without a reference are scored with;
    ``pool``: its argument names an image pool (checked when the variant is built, not validated);
    ``example``: a complete name to build it with in tests (default: ``name``).
    """
    return VARIANTS.register(name, usage=usage, baseline=baseline, fallback=fallback, pool=pool,
                             example=example or name)


def get_variant(spec: str) -> Variant:
    """Parse ``name[:arg]`` (e.g. ``shuffle:hard``, ``irrelevant:/data/pool``, ``stitch:5``)."""
    name, _, arg = spec.strip().partition(":")
    return VARIANTS.create(name, arg=arg or None)


def list_variants(pattern: str | None = None) -> list[str]:
    """Registered variant names, sorted."""
    return VARIANTS.list(pattern)


def variant_usage() -> list[str]:
    """The syntax of every variant, e.g. ``shuffle:N[:zero]``."""
    return [VARIANTS.brief(n)["usage"] for n in VARIANTS.list()]


def _flagged(flag: str) -> str:
    found = [n for n in VARIANTS.list() if VARIANTS.brief(n)[flag]]
    if len(found) != 1:
        raise RuntimeError(f"exactly one variant must be registered with {flag}=True, found {found}")
    return found[0]


def baseline_variant() -> str:
    """The variant that leaves the reference as the dataset has it (``clean``)."""
    return _flagged("baseline")


def fallback_variant() -> str:
    """The variant a sample without any reference is scored with (LR-as-reference)."""
    return _flagged("fallback")


def is_baseline(spec: str) -> bool:
    """Whether the variant named ``spec`` (``name[:arg]``) is the baseline."""
    return spec.partition(":")[0] == baseline_variant()


def variant_reference(v: Variant, inp: VariantInput, seed: int, fallback: bool = False):
    """The variant's reference for one sample, drawn from :func:`variant_rng` (the one way both the
    harness and ``builders.variant`` make it). With ``fallback``, a sample left without any
    reference gets the fallback variant's (LR-as-reference) instead of ``None``."""
    ref, record = v.apply(inp, variant_rng(seed, inp.sample_id, v.name))
    if ref is None and fallback:
        fb = get_variant(fallback_variant())
        ref, record = fb.apply(inp, variant_rng(seed, inp.sample_id, fb.name))
    return ref, record


def group_reference_paths(manifest, sample_id: str, group: str, split: str | None = None) -> list[tuple[str, str]]:
    """(sample_id, ref path) of the other referenced samples of a group, in level order."""
    m = manifest[(manifest["group"] == group) & (manifest["sample_id"] != sample_id) & (manifest["ref"] != "")]
    if split is not None:
        m = m[m["split"] == split]
    m = m.sort_values(["level", "sample_id"], kind="stable")
    return list(zip(m["sample_id"], m["ref"]))
