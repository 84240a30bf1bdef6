"""Aggregate a run's rows into the leaderboard tables (pure pandas; no file I/O here).

Every value is a mean over images of rows with status ``ok``; a metric with no such row shows
``unavailable (<reason>)`` or ``failed (<reason>)`` instead of a number.
"""
from __future__ import annotations

import pandas as pd

HEADLINE_METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "lpips", "musiq", "maniqa")
PROVENANCE = ("suite", "protocol", "protocol_hash", "git_sha", "device", "seed")
DECIMALS = {"psnr_y": 2, "psnr_rgb": 2, "ssim_y": 4, "lpips": 4, "musiq": 2, "maniqa": 4}


def _cell(group: pd.DataFrame) -> object:
    ok = group[group["status"] == "ok"]["value"]
    if len(ok):
        return float(ok.mean())
    bad = group.iloc[0]
    reason = str(bad["reason"])
    return reason if reason.startswith(f"{bad['status']} (") else f"{bad['status']} ({reason})"


def _provenance(df: pd.DataFrame) -> dict:
    return {c: ";".join(sorted(map(str, df[c].unique()))) for c in PROVENANCE if c in df}


def headline_level(df: pd.DataFrame) -> int:
    """Level 1 when the dataset has levels (the CUFED5 convention), else 0 (no reference levels)."""
    levels = sorted(df["level"].unique())
    return 1 if 1 in levels else levels[0]


def headline(df: pd.DataFrame) -> pd.DataFrame:
    """Model × dataset on clean references at the headline level: every metric, image count, failures."""
    out = []
    clean = df[df["variant"] == "clean"]
    for (model, weights, dataset), g in clean.groupby(["model", "weights", "dataset"], sort=True):
        g = g[g["level"] == headline_level(g)]
        row = {"model": model, "weights": weights, "dataset": dataset, "level": int(g["level"].iloc[0]),
               "images": g["image"].nunique(),
               "failed_images": g[g["status"] == "failed"]["image"].nunique()}
        for m in HEADLINE_METRICS:
            if (g["metric"] == m).any():
                row[m] = _cell(g[g["metric"] == m])
        out.append({**row, **_provenance(g), "dataset_hash": ";".join(sorted(g["dataset_hash"].unique()))})
    return pd.DataFrame(out)


def per_level(df: pd.DataFrame, metric: str = "psnr_y") -> pd.DataFrame:
    """Model × dataset rows, L1…LN columns on clean refs, plus LR-as-reference (SRNTT/FRFSR tables)."""
    out = []
    sel = df[df["metric"] == metric]
    for (model, weights, dataset), g in sel.groupby(["model", "weights", "dataset"], sort=True):
        row = {"model": model, "weights": weights, "dataset": dataset, "metric": metric}
        clean = g[g["variant"] == "clean"]
        for level in sorted(clean["level"].unique()):
            row[f"L{level}"] = _cell(clean[clean["level"] == level])
        if (g["variant"] == "lr").any():
            lr = g[g["variant"] == "lr"]
            row["LR-as-ref"] = _cell(lr[lr["level"] == headline_level(lr)])
        out.append({**row, **_provenance(g)})
    return pd.DataFrame(out)


def robustness(df: pd.DataFrame, metric: str = "psnr_y") -> pd.DataFrame:
    """Per model × dataset × variant at the headline level: value and drop versus clean references."""
    out = []
    sel = df[df["metric"] == metric]
    for (model, weights, dataset), g in sel.groupby(["model", "weights", "dataset"], sort=True):
        g = g[g["level"] == headline_level(g)]
        clean = _cell(g[g["variant"] == "clean"]) if (g["variant"] == "clean").any() else None
        for variant, gv in g.groupby("variant", sort=True):
            value = _cell(gv)
            drop = clean - value if isinstance(clean, float) and isinstance(value, float) else None
            out.append({"model": model, "weights": weights, "dataset": dataset, "variant": variant,
                        "metric": metric, "value": value, "drop_vs_clean": drop, **_provenance(gv)})
    return pd.DataFrame(out)


def protocol_drift(df: pd.DataFrame) -> pd.DataFrame:
    """The same SR outputs scored under every preset (clean refs, headline level)."""
    out = []
    clean = df[df["variant"] == "clean"]
    for (model, weights, dataset), g in clean.groupby(["model", "weights", "dataset"], sort=True):
        g = g[g["level"] == headline_level(g)]
        main = g["protocol"].iloc[0]
        row = {"model": model, "weights": weights, "dataset": dataset}
        for m in ("psnr_y", "ssim_y"):
            if (g["metric"] == m).any():
                row[f"{m}@{main}"] = _cell(g[g["metric"] == m])
            for metric in sorted(x for x in g["metric"].unique() if x.startswith(f"{m}@")):
                row[metric] = _cell(g[g["metric"] == metric])
        if len(row) > 3:
            out.append({**row, **_provenance(g)})
    return pd.DataFrame(out)


def to_markdown(table: pd.DataFrame, drop: tuple[str, ...] = PROVENANCE + ("dataset_hash", "weights")) -> str:
    """A GitHub Markdown table, numbers rounded per metric convention."""
    if table.empty:
        return "_(no rows)_\n"
    t = table.drop(columns=[c for c in drop if c in table.columns])
    header = "| " + " | ".join(map(str, t.columns)) + " |"
    sep = "|" + "|".join("---" for _ in t.columns) + "|"
    lines = [header, sep]
    metric_of_row = t["metric"] if "metric" in t.columns else None
    for i, row in t.iterrows():
        cells = []
        for col, v in row.items():
            base = str(col).split("@")[0]
            dec = DECIMALS.get(base, DECIMALS.get(metric_of_row[i] if metric_of_row is not None else "", 2))
            if isinstance(v, float):
                cells.append("" if pd.isna(v) else f"{v:.{dec}f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
