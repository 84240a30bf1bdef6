"""Suites are data: a YAML file naming models, datasets, variants, levels, protocol and metrics.

A suite is validated against the registries when it is loaded, so a typo fails before any work
starts, and it expands into a grid of jobs (model × dataset × variant; levels filter samples).
"""
from __future__ import annotations

import difflib
import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.yaml_io import load_yaml

SUITE_DIR = Path(__file__).parent / "suites"
ALL_RUNNABLE = "all-runnable"
ALL_PRESENT = "all-present"


class SuiteError(ValueError):
    pass


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    description: str
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    split: str
    levels: tuple[int, ...] | None  # None: every level present
    #: levels at which non-clean variants run (robustness tables read level 1); None: as ``levels``
    variant_levels: tuple[int, ...] | None
    variants: tuple[str, ...]
    protocol: str
    drift_protocols: tuple[str, ...]
    metrics: tuple[str, ...]
    seed: int
    limit: int | None = None  # evaluate only the first N groups per dataset
    profile: dict | None = field(default=None)
    #: also run every model under its own paper's protocol (benchmark/papers.yaml) where it differs
    paper_protocols: bool = False
    #: dataset -> the dataset run in its place when it is absent (the demo standing in for CUFED5)
    stand_in: dict | None = field(default=None)

    def as_dict(self) -> dict:
        """The fields, without the paper ones when unset (so run.json of earlier runs still matches)."""
        d = asdict(self)
        for key, unset in (("paper_protocols", False), ("stand_in", None)):
            if d[key] == unset:
                del d[key]
        return d


@dataclass(frozen=True)
class Job:
    model: str
    dataset: str
    variant: str
    protocol: str | None = None  # None: the suite's protocol; else a model's paper protocol

    @property
    def key(self) -> str:
        return f"{self.model}|{self.dataset}|{self.variant}" + (f"|{self.protocol}" if self.protocol else "")


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def suite_description(name: str) -> str:
    """A built-in suite's description, read without validating it (for ``--list-suites``)."""
    return str((load_yaml((SUITE_DIR / f"{name}.yaml").read_text()) or {}).get("description", ""))


def load_suite(name_or_path: str, **overrides) -> Suite:
    """Load a built-in suite by name or a YAML file; ``overrides`` replace fields (from the CLI)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(name_or_path, available_suites(), n=2)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SuiteError(f"unknown suite {name_or_path!r}{hint} (built in: {', '.join(available_suites())})")
    raw = load_yaml(path.read_text()) or {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return validate(raw, source=str(path))


def _as_tuple(value, field_name: str) -> tuple:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise SuiteError(f"suite field {field_name!r} must be a list or a string, got {value!r}")


def validate(raw: dict, source: str = "<suite>") -> Suite:
    """Check every name against its registry and expand ``all-runnable`` / ``all-present``."""
    from models import list_models
    from models.registry import full_name, split_name

    from . import dataset_registry, metrics, protocol
    from builders import variants

    fields = {"name", "version", "description", "models", "datasets", "split", "levels", "variants",
              "protocol", "drift_protocols", "metrics", "seed", "limit", "profile", "variant_levels",
              "paper_protocols", "stand_in"}
    unknown = set(raw) - fields
    if unknown:
        raise SuiteError(f"{source}: unknown suite fields {sorted(unknown)} (allowed: {sorted(fields)})")
    for required in ("name", "models", "datasets"):
        if required not in raw:
            raise SuiteError(f"{source}: suite needs a {required!r} field")

    models = _as_tuple(raw["models"], "models")
    if models in ((ALL_RUNNABLE,), ("all",)):
        models = tuple(list_models(tags=True))
    try:  # name[.tag]; old names (ttsr_rec) become their tag (ttsr.rec)
        models = tuple(dict.fromkeys(full_name(*split_name(m)) for m in models))
    except KeyError as exc:
        raise SuiteError(f"{source}: {exc.args[0]}") from None

    datasets = _as_tuple(raw["datasets"], "datasets")
    if datasets == (ALL_PRESENT,):
        datasets = tuple(dataset_registry.present())
    stand_in = raw.get("stand_in") or None
    if stand_in is not None and not isinstance(stand_in, dict):
        raise SuiteError(f"{source}: stand_in maps a dataset to the one run when it is absent, got {stand_in!r}")
    for d in (*datasets, *(stand_in or {}).values()):
        dataset_registry.resolve(d)
    datasets = tuple(dict.fromkeys(
        stand_in[d] if stand_in and d in stand_in and not dataset_registry.resolve(d).present else d
        for d in datasets))

    paper = bool(raw.get("paper_protocols", False))
    if paper:
        from .papers import load_papers

        papers = load_papers()
        missing = [m for m in models if m not in papers]
        if missing:
            raise SuiteError(f"{source}: paper_protocols: {', '.join(missing)} not in benchmark/papers.yaml "
                             f"(listed: {', '.join(papers)})")

    variant_names = _as_tuple(raw.get("variants", ["clean"]), "variants")
    for v in variant_names:
        name, _, arg = v.partition(":")
        if variants.VARIANTS.info(name).get("pool"):  # the pool is found (or the demo pool made) at run time
            if not arg:
                raise SuiteError(f"{source}: variant {v!r} needs a pool: {variants.VARIANTS.info(name)['usage']}")
        else:
            variants.get_variant(v)

    proto = raw.get("protocol", "refsr-standard")
    drift = _as_tuple(raw.get("drift_protocols") or [], "drift_protocols")
    for p in (proto, *drift):
        protocol.load_protocol(p)

    metric_names = _as_tuple(raw.get("metrics", ["psnr_y", "ssim_y"]), "metrics")
    for m in metric_names:
        if m not in metrics.list_metrics():
            close = difflib.get_close_matches(m, metrics.list_metrics(), n=2)
            raise SuiteError(f"{source}: unknown metric {m!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))

    def _levels(value, name):
        if value in (None, "all"):
            return None
        out = _as_tuple(value, name)
        if not out or not all(_is_int(x, 1) for x in out):
            raise SuiteError(f"{source}: suite field {name!r} must be 'all' or a list of level numbers >= 1 "
                             f"(1 = most similar), got {value!r}")
        return tuple(int(x) for x in out)

    levels_t = _levels(raw.get("levels", "all"), "levels")
    variant_levels = _levels(raw.get("variant_levels"), "variant_levels")
    split = raw.get("split", "test")
    if not isinstance(split, str) or not split.strip():
        raise SuiteError(f"{source}: suite field 'split' must be a split name such as test or train, got {split!r}")
    for name, low in (("version", 1), ("seed", 0), ("limit", 1)):
        if raw.get(name) is not None and not _is_int(raw[name], low):
            raise SuiteError(f"{source}: suite field {name!r} must be an integer >= {low}"
                             f"{' (or null: every group)' if name == 'limit' else ''}, got {raw[name]!r}")
    return Suite(name=str(raw["name"]), version=int(raw.get("version", 1)),
                 description=str(raw.get("description", "")), models=models, datasets=datasets,
                 split=split, levels=levels_t, variant_levels=variant_levels or levels_t,
                 variants=variant_names,
                 protocol=str(proto), drift_protocols=drift, metrics=metric_names,
                 seed=int(raw.get("seed", 0)), limit=raw.get("limit"), profile=_profile(raw.get("profile"), source),
                 paper_protocols=paper, stand_in=stand_in)


def _is_int(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def profile_sizes(profile) -> list[dict]:
    """A suite's ``profile`` as a list of input sizes: one mapping or a list of them."""
    if profile is None:
        return []
    return [profile] if isinstance(profile, dict) else list(profile)


def _profile(value, source: str):
    """``profile: {lr: [h, w], ref: [h, w], warmup: n, runs: n}`` or a list of such sizes (one profile row
    per model and size), range-checked."""
    for p in profile_sizes(value) if isinstance(value, (dict, list)) or value is None else [value]:
        ok = (isinstance(p, dict) and set(p) <= {"lr", "ref", "warmup", "runs"} and {"lr", "ref"} <= set(p)
              and all(isinstance(p[k], (list, tuple)) and len(p[k]) == 2 and all(_is_int(v, 1) for v in p[k])
                      for k in ("lr", "ref"))
              and _is_int(p.get("warmup", 0), 0) and _is_int(p.get("runs", 1), 1))
        if not ok:
            raise SuiteError(f"{source}: suite field 'profile' must be null, {{lr: [h, w], ref: [h, w], warmup: n >= 0, "
                             f"runs: n >= 1}} or a list of those, got {p!r}")
    return value


def jobs(suite: Suite) -> list[Job]:
    """The job grid in a stable order; with ``paper_protocols``, each model's jobs under its paper
    protocol follow its jobs under the suite's (none where the two are the same preset)."""
    out = []
    for m in suite.models:
        protocols = [None]
        if suite.paper_protocols:
            from .papers import paper_protocol

            own = paper_protocol(m)
            if own and own != suite.protocol:
                protocols.append(own)
        out += [Job(m, d, v, p) for p, d, v in itertools.product(protocols, suite.datasets, suite.variants)]
    return out
