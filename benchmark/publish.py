"""Publish a run: leaderboard CSVs, a Markdown view and plots, next to the run.

    python -m benchmark.publish --run runs/demo [--out DIR]

By default the leaderboard goes to ``<run>/leaderboard/``; ``make demo`` publishes the demo to the
repository's ``leaderboards/demo/``, the one tracked leaderboard.

Files (all generated; never edit by hand): ``headline.csv`` (model × dataset, clean references,
level 1), ``per_level.csv`` (PSNR-Y per reference level and LR-as-reference), ``robustness.csv``
(value and drop versus clean per variant), ``protocol_drift.csv`` (the same outputs under every
protocol preset), ``profiles.csv`` (params, FLOPs, runtime, memory), ``README.md`` (all tables),
``psnr_by_level.png``, ``robustness.png`` and ``quality_vs_runtime.png``.
"""
from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from builders.variants import is_baseline  # noqa: E402
from core.files import atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: E402

from . import leaderboard as lb  # noqa: E402
from .qualitative import qualitative_figure  # noqa: E402
from .results import RESULTS  # noqa: E402

PROFILES = "profiles.parquet"


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False, float_format="%.6f"))


def _save_fig(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_levels(per_level: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    levels = sorted({int(c[1:]) for c in per_level.columns if c.startswith("L") and c[1:].isdigit()})
    ax.set_xticks(levels)
    for _, row in per_level.iterrows():
        cols = [c for c in per_level.columns if c.startswith("L") and c[1:].isdigit() and pd.notna(row[c])]
        if cols:
            ax.plot([int(c[1:]) for c in cols], [row[c] for c in cols], marker="o", label=f"{row['model']} ({row['dataset']})")
            if pd.notna(row.get("LR-as-ref", float("nan"))):
                ax.axhline(row["LR-as-ref"], ls=":", lw=1, color=ax.lines[-1].get_color())
    ax.set_xlabel("reference level (1 = most similar)")
    ax.set_ylabel("PSNR-Y (dB)")
    ax.set_title("PSNR by reference level (dotted: LR as reference)")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    _save_fig(fig, path)


def plot_robustness(rob: pd.DataFrame, path: Path) -> None:
    data = rob[rob["drop_vs_clean"].notna() & ~rob["variant"].map(is_baseline)] if not rob.empty else rob
    if not data.empty:  # reference-free models (bicubic) drop by 0 everywhere: no bar to see
        moved = data.groupby("model")["drop_vs_clean"].apply(lambda d: (d.abs() > 1e-12).any())
        data = data[data["model"].isin(moved[moved].index)]
    fig, ax = plt.subplots(figsize=(7, 4))
    if not data.empty:
        pivot = data.pivot_table(index="variant", columns="model", values="drop_vs_clean", aggfunc="mean")
        pivot.plot.bar(ax=ax)
    ax.set_ylabel("PSNR-Y drop vs clean reference (dB)")
    ax.set_title("Robustness: loss when the reference goes bad")
    ax.grid(alpha=0.3, axis="y")
    _save_fig(fig, path)


def plot_quality_runtime(head: pd.DataFrame, prof: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    if not prof.empty and "psnr_y" in head:
        merged = head.merge(prof, on="model")
        merged = merged[merged["psnr_y"].notna()]
        for _, r in merged.iterrows():
            size = 40 + max(float(r["params_total"]), 0.0) / 2e4  # parameter-free models: the smallest bubble
            ax.scatter(r["runtime_median_s"], r["psnr_y"], s=size, alpha=0.6)
            ax.annotate(f"{r['model']} ({r['dataset']})", (r["runtime_median_s"], r["psnr_y"]), fontsize=8)
        ax.set_xscale("log")
    ax.set_xlabel("runtime per image, s (LR 128², Ref 512²; log scale)")
    ax.set_ylabel("PSNR-Y (dB), level 1")
    ax.set_title("Quality vs runtime (bubble size = parameters)")
    ax.grid(alpha=0.3)
    _save_fig(fig, path)


def _one_line(reason: str) -> str:
    """A 'not scored' reason in one Markdown line: the missing files by name, else the first line."""
    files = re.findall(r"/([^/\s]+)\s+\[", reason)
    if "missing weight file" in reason and files:
        return f"no weights: {', '.join(files)} (`--list-models` says where each is published)"
    return reason.splitlines()[0] if reason else ""


def publish(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the leaderboard of a run into ``out`` (default ``<run>/leaderboard``); return the folder."""
    run_dir = Path(run_dir)
    if not (run_dir / RESULTS).is_file():
        raise FileNotFoundError(f"{run_dir} holds no {RESULTS}: is it a finished run folder?")
    df = pd.read_parquet(run_dir / RESULTS)
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    suite = str(df["suite"].iloc[0]) if len(df) else run.get("suite", {}).get("name", "run")
    out = Path(out) if out is not None else run_dir / "leaderboard"
    out.mkdir(parents=True, exist_ok=True)
    prof = pd.read_parquet(run_dir / PROFILES) if (run_dir / PROFILES).is_file() else pd.DataFrame()

    proto_name = run.get("protocol", {}).get("name") or lb.main_protocol(df)
    tables = {"headline": lb.headline(df, protocol=proto_name), "per_level": lb.per_level(df, protocol=proto_name),
              "robustness": lb.robustness(df, protocol=proto_name), "paired": lb.paired(df, protocol=proto_name),
              "protocol_drift": lb.protocol_drift(df, protocol=proto_name), "profiles": prof}
    unavailable = dict(run.get("unavailable_models", {}))
    for shard_file in sorted((run_dir / "shards").glob("run-*.json")):  # sharded runs: every shard's record
        unavailable.update(json.loads(shard_file.read_text()).get("unavailable_models", {}))
    suite_cfg = run.get("suite", {})
    if suite_cfg.get("paper_protocols"):
        from .papers import load_papers

        tables["paper"] = lb.paper_table(df, load_papers(), suite_cfg["models"], suite_cfg["datasets"], proto_name,
                                         suite_cfg.get("stand_in"), {m: _one_line(w) for m, w in unavailable.items()})
        # paper-protocol rows are separate runs of the model, not the same outputs re-scored
        drift_df = df[df["protocol"].isin([proto_name, *suite_cfg.get("drift_protocols", [])])]
        tables["protocol_drift"] = lb.protocol_drift(drift_df, protocol=proto_name)
    for name, table in tables.items():
        _write_csv(table, out / f"{name}.csv")
    plot_levels(tables["per_level"], out / "psnr_by_level.png")
    plot_robustness(tables["robustness"], out / "robustness.png")
    plot_quality_runtime(tables["headline"], prof, out / "quality_vs_runtime.png")
    atomic_write_json(out / "results.json", {"run": str(run_dir), "suite": suite, "protocol": proto_name,
                                             "interval": "95 % percentile bootstrap over images (10,000 resamples)",
                                             "aggregates": lb.aggregates(df)})
    figure = False
    if (run_dir / "sr").is_dir() and len(df):
        from .protocol import load_protocol

        proto = load_protocol(proto_name)
        fig = qualitative_figure(run_dir, df, proto)
        if fig is not None:
            _save_fig(fig, out / "qualitative.png")
            figure = True

    md = [f"# Leaderboard: `{suite}`", "",
          "Generated by `python -m benchmark.publish` from a run; do not edit by hand.", "",
          f"- protocol: `{run.get('protocol', {}).get('name', '?')}` (hash `{run.get('protocol_hash', '?')}`)",
          f"- git: `{run.get('git_sha', '?')}`; device: {run.get('device', '?')}; seed: {run.get('suite', {}).get('seed', '?')}",
          f"- rows: {len(df)}; failed rows: {int((df['status'] == 'failed').sum()) if len(df) else 0}", ""]
    if unavailable:
        md += ["Models not scored (no weights; nothing is scored with random weights):", ""]
        md += [f"- `{m}`: {_one_line(why)}" for m, why in sorted(unavailable.items())] + [""]
    notes = list(dict.fromkeys(n for cell in tables["headline"].get("notes", []) for n in lb.split_notes(cell)))
    if notes:
        marks = {n: i + 1 for i, n in enumerate(notes)}
        tables["headline"] = tables["headline"].assign(
            notes=[" ".join(f"[{marks[n]}]" for n in lb.split_notes(c)) for c in tables["headline"]["notes"]])
    sections = [("Paper figures: published (cited table) vs reproduced under the paper's protocol vs "
                 "refsr-standard (clean reference, level 1; empty = not scored, see status)", "paper")] \
        if "paper" in tables else []
    sections += [("Headline (clean reference; level 1 where the dataset has levels; mean [95 % bootstrap interval])",
                 "headline"),
                ("PSNR-Y by reference level (ref_use = L1 minus LR-as-reference: what the reference adds)",
                 "per_level"),
                ("Paired differences (PSNR-Y, clean reference, images both models scored; "
                 "a_better_share = share of images where A wins)", "paired"),
                ("Robustness (PSNR-Y, drop versus clean reference)", "robustness"),
                ("Protocol drift (the same outputs under every preset)", "protocol_drift"),
                ("Profiles", "profiles")]
    keep_protocol = tuple(c for c in lb.PROVENANCE if c != "protocol") + ("dataset_hash", "weights")
    for title, name in sections:
        table = lb.to_markdown(tables[name], drop=keep_protocol) if name == "protocol_drift" else lb.to_markdown(tables[name])
        md += [f"## {title}", "", table, ""]
        if name == "headline" and notes:
            md += [f"[{i + 1}] {n}" + "  " for i, n in enumerate(notes)] + [""]
    md += ["![PSNR by level](psnr_by_level.png)", "", "![Robustness](robustness.png)", "",
           "![Quality vs runtime](quality_vs_runtime.png)", ""]
    if figure:
        md += ["## What the outputs look like", "", "![Side by side](qualitative.png)", ""]
    atomic_write_text(out / "README.md", "\n".join(md))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.publish", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder holding results.parquet (and run.json)")
    p.add_argument("--out", default=None, help="leaderboard folder (default: <run>/leaderboard)")
    args = p.parse_args(argv)
    out = publish(args.run, args.out)
    print((out / "README.md").read_text())
    print(f"leaderboard written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
