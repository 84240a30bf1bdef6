"""Aggregate a run's rows into the leaderboard tables (pure pandas; no file I/O here).

Every value is a mean over images of rows with status ``ok``; a metric with no such row is an
empty (NaN) cell and its status goes to the row's ``notes`` column, never into a value cell.
Which metrics are headline, their labels, directions and decimals come from the metric
registry; which variant is the baseline (clean) and which is LR-as-reference, from the variant
registry; the run's own protocol is the one of its headline rows (other presets are drift rows).
"""
from __future__ import annotations

import re

import pandas as pd

from builders.variants import baseline_variant, fallback_variant

from .metrics import list_metrics, metric_info
from .stats import bootstrap_ci, paired_difference

PROVENANCE = ("suite", "protocol", "protocol_hash", "git_sha", "device", "seed")
GROUP = ["model", "weights", "weights_tag", "dataset"]


def headline_metrics() -> list[str]:
    return sorted((m for m in list_metrics() if metric_info(m).headline), key=lambda m: (metric_info(m).order, m))


def split_notes(cell: str) -> list[str]:
    """The per-metric statuses of a ``notes`` cell (joined with '; ' before a metric name)."""
    names = "|".join(map(re.escape, list_metrics()))
    return [n for n in re.split(rf"; (?=(?:{names}): )", str(cell)) if n]


def _value(group: pd.DataFrame) -> float:
    ok = group[group["status"] == "ok"]["value"]
    return float(ok.mean()) if len(ok) else float("nan")


def _ci(group: pd.DataFrame) -> tuple[float, float]:
    """95 % bootstrap interval of the mean over images (NaN below two images)."""
    return bootstrap_ci(group[group["status"] == "ok"]["value"].to_numpy())


def _status(group: pd.DataFrame) -> str:
    """'' when some row is ok; else '<status>: <reason>' of the first row."""
    if (group["status"] == "ok").any():
        return ""
    bad = group.iloc[0]
    reason = str(bad["reason"])
    for prefix in (f"{bad['status']} (", f"{bad['status']}: "):  # older rows repeated the status
        if reason.startswith(prefix):
            reason = reason[len(prefix):].rstrip(")") if prefix.endswith("(") else reason[len(prefix):]
    return f"{bad['status']}: {reason}"


def _provenance(df: pd.DataFrame) -> dict:
    return {c: ";".join(sorted(map(str, df[c].unique()))) for c in PROVENANCE if c in df}


def main_protocol(df: pd.DataFrame, protocol: str | None = None) -> str:
    """The run's protocol: ``protocol`` when given (publish passes the run's), else the one with the
    most metrics (drift presets score only PSNR-Y and SSIM-Y), then the most rows."""
    if protocol or not len(df):
        return protocol or ""
    stats = df.groupby("protocol").agg(metrics=("metric", "nunique"), rows=("metric", "size"))
    return str(stats.sort_values(["metrics", "rows"], ascending=False).index[0])


def _main(df: pd.DataFrame, protocol: str | None = None) -> pd.DataFrame:
    return df[df["protocol"] == main_protocol(df, protocol)] if "protocol" in df else df


def _groups(df: pd.DataFrame):
    cols = [c for c in GROUP if c in df.columns]
    for key, g in df.groupby(cols, sort=True, dropna=False):
        yield dict(zip(cols, key)), g


def headline_level(df: pd.DataFrame) -> int:
    """Level 1 when the dataset has levels (the CUFED5 convention), else 0 (no reference levels)."""
    levels = sorted(df["level"].unique())
    return 1 if 1 in levels else levels[0]


def headline(df: pd.DataFrame, protocol: str | None = None) -> pd.DataFrame:
    """Model × dataset on clean references at the headline level: every metric, image count, failures."""
    out = []
    main = _main(df, protocol)
    clean = main[main["variant"] == baseline_variant()]
    for key, g in _groups(clean):
        g = g[g["level"] == headline_level(g)]
        row = {**key, "level": int(g["level"].iloc[0]), "images": g["image"].nunique(),
               "failed_images": g[g["status"] == "failed"]["image"].nunique()}
        notes = []
        for m in headline_metrics():
            if (g["metric"] == m).any():
                gm = g[g["metric"] == m]
                row[m] = _value(gm)
                row[f"{m}_ci_low"], row[f"{m}_ci_high"] = _ci(gm)
                if _status(gm):
                    notes.append(f"{m}: {_status(gm)}")
        row["notes"] = "; ".join(notes)
        out.append({**row, **_provenance(g), "dataset_hash": ";".join(sorted(g["dataset_hash"].unique()))})
    return pd.DataFrame(out)


def per_level(df: pd.DataFrame, metric: str = "psnr_y", protocol: str | None = None) -> pd.DataFrame:
    """Model × dataset rows, L1…LN columns on clean refs, plus LR-as-reference (SRNTT/FRFSR tables)."""
    out = []
    main = _main(df, protocol)
    sel = main[main["metric"] == metric]
    lr_name = fallback_variant()
    for key, g in _groups(sel):
        row = {**key, "metric": metric}
        clean = g[g["variant"] == baseline_variant()]
        for level in sorted(clean["level"].unique()):
            row[f"L{level}"] = _value(clean[clean["level"] == level])
        if (g["variant"] == lr_name).any():
            lr = g[g["variant"] == lr_name]
            row["LR-as-ref"] = _value(lr[lr["level"] == headline_level(lr)])
            if "L1" in row:  # how much the model uses its reference: best reference vs none
                row["ref_use"] = row["L1"] - row["LR-as-ref"]
        out.append({**row, **_provenance(g)})
    return pd.DataFrame(out)


def robustness(df: pd.DataFrame, metric: str = "psnr_y", protocol: str | None = None) -> pd.DataFrame:
    """Per model × dataset × variant at the headline level: value and drop versus clean references."""
    out = []
    main = _main(df, protocol)
    sel = main[main["metric"] == metric]
    for key, g in _groups(sel):
        g = g[g["level"] == headline_level(g)]
        base = g[g["variant"] == baseline_variant()]
        clean = _value(base) if len(base) else float("nan")
        for variant, gv in g.groupby("variant", sort=True):
            value = _value(gv)
            out.append({**key, "variant": variant, "metric": metric, "value": value,
                        "drop_vs_clean": clean - value, "notes": _status(gv), **_provenance(gv)})
    cols = [*GROUP, "variant", "metric", "value", "drop_vs_clean", "notes", *PROVENANCE]
    return pd.DataFrame(out, columns=[c for c in cols if not out or c in out[0]])


def paired(df: pd.DataFrame, metric: str = "psnr_y", protocol: str | None = None) -> pd.DataFrame:
    """Every pair of models on each dataset (clean references, headline level, the images both
    scored): mean difference A - B with its 95 % bootstrap interval and the share of images A wins."""
    main = _main(df, protocol)
    sel = main[(main["metric"] == metric) & (main["variant"] == baseline_variant()) & (main["status"] == "ok")]
    out = []
    for dataset, g in sel.groupby("dataset", sort=True):
        g = g[g["level"] == headline_level(g)]
        wide = g.pivot_table(index="image", columns="model", values="value", aggfunc="first")
        names = sorted(wide.columns)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                both = wide[[a, b]].dropna()
                if len(both):
                    d = paired_difference(both[a].to_numpy(), both[b].to_numpy())
                    if not metric_info(metric).higher_is_better:
                        d["a_better_share"] = 1.0 - d["a_better_share"]
                    out.append({"dataset": dataset, "model_a": a, "model_b": b, "metric": metric, **d})
    return pd.DataFrame(out)


def aggregates(df: pd.DataFrame) -> list[dict]:
    """Per model × weights × dataset × variant × level × protocol × metric: images, mean and 95 % interval
    (what results.json holds)."""
    out = []
    cols = [c for c in [*GROUP, "variant", "level", "protocol", "metric"] if c in df.columns]
    for key, g in df.groupby(cols, sort=True, dropna=False):
        ok = g[g["status"] == "ok"]["value"]
        lo, hi = bootstrap_ci(ok.to_numpy())
        rec = {c: (int(v) if c == "level" else v) for c, v in zip(cols, key)}
        out.append({**rec, "images": int(g["image"].nunique()), "ok": int(len(ok)),
                    "mean": float(ok.mean()) if len(ok) else None, "ci95_low": None if lo != lo else lo,
                    "ci95_high": None if hi != hi else hi, "status": _status(g) or "ok"})
    return out


def protocol_drift(df: pd.DataFrame, metrics: tuple[str, ...] = ("psnr_y", "ssim_y"),
                   protocol: str | None = None) -> pd.DataFrame:
    """The same SR outputs scored under every preset (clean refs, headline level): one row per
    model × dataset × protocol, the run's own protocol first."""
    out = []
    main = main_protocol(df, protocol)
    clean = df[df["variant"] == baseline_variant()]
    for key, g in _groups(clean):
        g = g[g["level"] == headline_level(g)]
        protocols = sorted(g["protocol"].unique(), key=lambda p: (p != main, p))
        if len(protocols) < 2:
            continue
        for proto in protocols:
            gp = g[g["protocol"] == proto]
            row = {**key, "protocol": proto}
            for m in metrics:
                if (gp["metric"] == m).any():
                    row[m] = _value(gp[gp["metric"] == m])
            out.append(row)
    return pd.DataFrame(out)


def _header(col: str) -> str:
    try:
        info = metric_info(col)
    except KeyError:
        return col
    return f"{info.label or col} {info.arrow}"


def _decimals(col: str, metric_of_row: str | None) -> int:
    suffix = next((m for m in list_metrics() if col.endswith(f"_{m}")), None)  # e.g. published_ssim_y
    for name in (col, metric_of_row, suffix):
        try:
            return metric_info(name).decimals
        except (KeyError, TypeError):
            continue
    return 2


def to_markdown(table: pd.DataFrame, drop: tuple[str, ...] = PROVENANCE + ("dataset_hash", "weights")) -> str:
    """A GitHub Markdown table: metric columns labelled with ↑/↓, numbers rounded per metric."""
    if table.empty:
        return "_(no rows)_\n"
    if "weights" in table.columns and not table["weights"].isin(["official", "none", "precomputed"]).all():
        drop = tuple(c for c in drop if c != "weights")  # custom or trained files: say which, never hide it
    t = table.drop(columns=[c for c in drop if c in table.columns])
    ci_of = {c[: -len("_ci_low")] for c in t.columns if c.endswith("_ci_low")}
    t = t.drop(columns=[c for c in t.columns if c.endswith(("_ci_low", "_ci_high"))])
    header = "| " + " | ".join(_header(str(c)) for c in t.columns) + " |"
    sep = "|" + "|".join("---" for _ in t.columns) + "|"
    lines = [header, sep]
    metric_of_row = t["metric"] if "metric" in t.columns else None
    for i, row in t.iterrows():
        cells = []
        for col, v in row.items():
            if isinstance(v, float):
                dec = _decimals(str(col), metric_of_row[i] if metric_of_row is not None else None)
                cell = "" if pd.isna(v) else f"{v:.{dec}f}"
                if col in ci_of and cell and pd.notna(table.at[i, f"{col}_ci_low"]):
                    cell += f" [{table.at[i, f'{col}_ci_low']:.{dec}f}, {table.at[i, f'{col}_ci_high']:.{dec}f}]"
                cells.append(cell)
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paper_table(df: pd.DataFrame, papers: dict, models, datasets, common: str, stand_in: dict | None = None,
                unavailable: dict | None = None) -> pd.DataFrame:
    """Published vs reproduced vs common protocol: one row per model × dataset of a ``paper``
    suite (clean references, headline level). ``papers``: model -> :class:`benchmark.papers.PaperEntry`;
    ``common``: the suite's protocol; ``stand_in``: dataset -> the one run in its place;
    ``unavailable``: model -> why it was not scored (its reproduced cells stay empty, its
    ``status`` says why: never a number from a model that did not run).
    ``paper_minus_published_psnr_y`` is filled only on the dataset the figure was published on."""
    stood_in = {v: k for k, v in (stand_in or {}).items()}
    clean = df[df["variant"] == baseline_variant()] if len(df) else df
    out = []
    for model in models:
        entry = papers[model]
        for dataset in datasets:
            fig = entry.figure(stood_in.get(dataset, dataset))
            row = {"model": model, "dataset": dataset, "paper_protocol": entry.protocol,
                   "published_on": fig.dataset if fig else "",
                   "published_psnr_y": dict(fig.values).get("psnr_y", float("nan")) if fig else float("nan"),
                   "published_ssim_y": dict(fig.values).get("ssim_y", float("nan")) if fig else float("nan"),
                   "source": fig.source if fig else entry.published_note}
            g = clean[(clean["model"] == model) & (clean["dataset"] == dataset)] if len(clean) else clean
            if len(g):
                g = g[g["level"] == headline_level(g)]
            for label, proto in (("paper", entry.protocol), ("common", common)):
                gp = g[g["protocol"] == proto] if len(g) else g
                for m in ("psnr_y", "ssim_y"):
                    gm = gp[gp["metric"] == m] if len(gp) else gp
                    row[f"{label}_{m}"] = _value(gm) if len(gm) else float("nan")
            same = fig is not None and fig.dataset == dataset  # a stand-in dataset is not the published one
            row["paper_minus_published_psnr_y"] = (row["paper_psnr_y"] - row["published_psnr_y"]
                                                   if same else float("nan"))
            notes = []
            if unavailable and model in unavailable:
                notes.append(unavailable[model])
            elif len(g) and _status(g):
                notes.append(_status(g))
            elif not len(g):
                notes.append("not run")
            if entry.protocol_note:
                notes.append(f"protocol: {entry.protocol_note}")
            row["status"] = "; ".join(notes)
            out.append(row)
    return pd.DataFrame(out)
