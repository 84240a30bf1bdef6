"""CLI: derive a robustness variant of a dataset (new references, same HRs), deterministic from the seed.

    python -m builders.variant --dataset DIR --variant shuffle:4|irrelevant:POOL|lr|warp|luma|stitch:K \
        --out DIR --seed N [--jobs N]

Every sample's new reference is ``variant.apply(sample, variant_rng(seed, sample_id, variant.name))``;
the manifest gains ``variant`` (canonical name), ``variant_params`` (JSON, sorted keys: the variant's
parameters and what was drawn for this sample) and ``clean_ref`` (the reference it replaced; a sample
that had none, level 0, gets level 1 once a variant gives it a reference). The
draws do not depend on the processing order, so any ``--jobs`` gives the same bytes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from builders.images import BadImage, read_rgb
from builders.manifest import Dataset, DatasetError
from builders._cli import at_least, report_or_error
from builders.report import BuildReport
from builders.writer import Array, Digest, Row, Source, check_target, make_spec, ordered_map, write_dataset
from builders.variants import (Variant, VariantError, VariantInput, get_variant, group_reference_paths,
                               is_baseline, variant_reference, variant_usage)


class VariantReport(BuildReport):
    def format(self) -> str:
        lines = super().format().splitlines()
        lines[1] = f"  inputs: {self.images} samples in {self.albums} groups"
        return "\n".join(lines)


def ref_name(sample_id: str, split: str) -> str:
    """A file name for a sample's new reference, under its split's folder (as the writer requires);
    ids that need escaping get a hash suffix to stay unique."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)
    if safe != sample_id or safe.startswith("."):
        safe = f"{safe}-{hashlib.sha256(sample_id.encode()).hexdigest()[:8]}"
    return f"{split}/variant_refs/{safe}.png"


def transform_row(ds: Dataset, v: Variant, row: dict, seed: int, scale: int, load) -> tuple[Row | None, str]:
    """One sample's new reference as a planned row; (None, skip reason) when the variant cannot make it."""
    try:
        hr = load(row["hr"])
        ref = load(row["ref"]) if row["ref"] else None
        lr = load(row["lr"]) if isinstance(row.get("lr"), str) and row["lr"] else None
        others = group_reference_paths(ds.manifest, row["sample_id"], row["group"]) if v.uses_group_refs else []
        extra = tuple(load(rel) for _, rel in others)
        inp = VariantInput(sample_id=row["sample_id"], level=int(row["level"]), hr=hr, ref=ref, lr=lr,
                           scale=scale, refs=extra)
        new, record = variant_reference(v, inp, seed)
    except BadImage as e:
        return None, f"input-{e.reason}"
    except FileNotFoundError:  # e.g. an HR deleted from the clean dataset: one sample, not the variant
        return None, "input-missing-file"
    except VariantError as e:
        return None, e.reason
    if v.uses_group_refs:
        record["stitched_from"] = [row["sample_id"], *(sid for sid, _ in others)][:record["k_used"]]
    out = dict(row, clean_ref=row["ref"], variant=v.name,
               variant_params=json.dumps({**v.params, **record}, sort_keys=True))
    # HR and LR files are carried over from the clean dataset
    files = {out[c]: Source(ds.path(out[c])) for c in ("hr", "lr") if isinstance(out.get(c), str) and out[c]}
    if new is None:
        out.update(ref="", ref_height=0, ref_width=0)
    else:
        rel = ref_name(row["sample_id"], row["split"])
        files[rel] = Array(new)
        out.update(ref=rel, ref_height=int(new.shape[0]), ref_width=int(new.shape[1]),
                   level=int(row["level"]) or 1)
        if "ref_sha256" in row:
            out["ref_sha256"] = Digest(rel)
    return Row(out, files), ""


def frozen(img):
    """Read-only, so a cached image shared between samples cannot be altered by one of them."""
    img.flags.writeable = False
    return img


def variant_rows(ds: Dataset, v: Variant, seed: int, scale: int, report: BuildReport, jobs: int = 1) -> Iterator[Row]:
    """The rows of ``v`` applied to every sample of ``ds``, in manifest order (computed on ``jobs`` threads)."""
    # rows of a group are adjacent (sorted ids) and share their HR and, for stitch, their references
    load = lru_cache(maxsize=8 * max(1, jobs))(lambda rel: frozen(read_rgb(ds.path(rel))[0]))
    rows = ds.manifest.to_dict("records")
    for row, (new, reason) in zip(rows, ordered_map(lambda r: transform_row(ds, v, r, seed, scale, load),
                                                    rows, jobs)):
        if new is None:
            report.skip(reason, row["sample_id"])
        else:
            yield new


def derive_variant(dataset: str | Path, variant: str, out: str | Path, *, seed: int = 0, jobs: int = 1,
                   overwrite: bool = False, link: bool = True, scale: int | None = None) -> VariantReport:
    """Write ``variant`` of ``dataset`` to ``out``; HR (and LR) files are hard-linked or copied."""
    ds = Dataset.open(dataset)
    v = get_variant(variant)
    df = ds.manifest
    if "variant" in df.columns and not df["variant"].fillna("").map(lambda n: not n or is_baseline(n)).all():
        raise DatasetError(f"{dataset} is already a variant ({df['variant'].iloc[0]}); derive from the clean dataset")
    check_target(out, overwrite)
    scale = int(scale or (ds.spec.get("config") or {}).get("scale", 4))
    report = VariantReport(recipe=f"variant:{v.name}", out=str(out))
    report.images, report.albums = len(df), df["group"].nunique()
    spec = make_spec(name=Path(out).name, kind="variant", created_by=v.name, version=v.version,
                     config={"params": v.params, "scale": scale}, seed=seed,
                     base={"name": ds.name, "fingerprint": ds.fingerprint(),
                           **{k: ds.spec[k] for k in ("kind", "created_by", "version") if k in ds.spec}},
                     inputs={"samples": len(df), "groups": int(df["group"].nunique())})
    columns = list(df.columns) + [c for c in ("clean_ref", "variant", "variant_params") if c not in df.columns]
    write_dataset(out, variant_rows(ds, v, seed, scale, report, jobs), spec, report, columns=columns,
                  overwrite=overwrite, jobs=jobs, link=link)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m builders.variant", description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True, help="the clean dataset folder")
    ap.add_argument("--variant", required=True, help="one of: " + ", ".join(variant_usage()))
    ap.add_argument("--out", required=True, help="dataset folder to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="threads (the result does not depend on it)")
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    ap.add_argument("--copy", action="store_true", help="copy HR files instead of hard-linking them")
    ap.add_argument("--scale", type=int, default=None, help="SR scale for the lr variant (default: spec's, else 4)")
    args = ap.parse_args(argv)
    return report_or_error(lambda: at_least(args, jobs=1, scale=1, seed=0) or derive_variant(args.dataset, args.variant, args.out, seed=args.seed,
                                                  jobs=args.jobs, overwrite=args.overwrite, link=not args.copy,
                                                  scale=args.scale))


if __name__ == "__main__":
    sys.exit(main())
