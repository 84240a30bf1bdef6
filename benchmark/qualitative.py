"""The side-by-side figure RefSR papers show: for a few images, the same crop of the LR input, each
model's output and the HR, taken where the models disagree most.

It reads the SR images a run saved with ``--save-sr`` (``<run>/sr/<model>/<dataset>/<variant>/``),
picks per dataset the images whose PSNR-Y spread across models is largest and, in each, the square
window where the outputs differ most (largest variance across models), and draws LR (nearest-neighbour
upscaled, so its pixels stay visible), every model and HR with their image PSNR-Y.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from builders.images import read_rgb


def _crop_box(stack: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left of the ``side`` window with the largest summed variance across models."""
    var = stack.astype(np.float64).var(axis=0).sum(axis=-1)
    integral = np.pad(var.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y), int(x)


def qualitative_figure(run_dir: Path, df: pd.DataFrame, protocol, variant: str = "clean",
                       per_dataset: int = 2, side: int = 96):
    """The matplotlib figure, or None when the run saved no SR images."""
    import matplotlib.pyplot as plt

    from . import dataset_registry
    from .evaluation import sr_folder

    sel = df[(df["metric"] == "psnr_y") & (df["variant"] == variant) & (df["status"] == "ok")
             & (df["protocol"] == protocol.name)]
    rows = []
    for dataset, g in sel.groupby("dataset", sort=True):
        models = [m for m in sorted(g["model"].unique())
                  if (sr_folder(run_dir, m, dataset, variant)).is_dir()]
        if len(models) < 1:
            continue
        spread = g[g["model"].isin(models)].pivot_table(index="image", columns="model", values="value").dropna()
        if spread.empty:
            continue
        order = (spread.max(axis=1) - spread.min(axis=1)).sort_values(ascending=False)
        ds = dataset_registry.open_dataset(dataset_registry.resolve(dataset))
        manifest = ds.manifest.set_index("sample_id")
        for image in order.index[:per_dataset]:
            row = manifest.loc[image]
            given = read_rgb(ds.path(row["lr"]))[0] if protocol.lr.kernel == "dataset" else None
            hr_eval, lr = protocol.make_pair(read_rgb(ds.path(row["hr"]))[0], 4, given)
            outs = [read_rgb(sr_folder(run_dir, m, dataset, variant) / f"{image}.png")[0] for m in models]
            h = min(o.shape[0] for o in [hr_eval, *outs])
            w = min(o.shape[1] for o in [hr_eval, *outs])
            s = min(side, h, w)
            y, x = _crop_box(np.stack([o[:h, :w] for o in outs]), s) if len(outs) > 1 else (
                (h - s) // 2, (w - s) // 2)
            lr_up = np.repeat(np.repeat(lr, 4, 0), 4, 1)
            panels = [("LR (input)", lr_up[y:y + s, x:x + s])]
            panels += [(f"{m}\n{spread.loc[image, m]:.2f} dB", o[y:y + s, x:x + s]) for m, o in zip(models, outs)]
            panels.append(("HR", hr_eval[y:y + s, x:x + s]))
            rows.append((f"{Path(dataset).name} / {image}", panels))
    if not rows:
        return None
    cols = max(len(p) for _, p in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols, 2.2 * len(rows)), squeeze=False)
    for r, (title, panels) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(panels):
                label, img = panels[c]
                ax.imshow(img, interpolation="nearest")
                ax.set_title(label, fontsize=8)
        axes[r][0].text(-0.08, 0.5, title, transform=axes[r][0].transAxes, rotation=90, va="center",
                        ha="right", fontsize=8)
    fig.suptitle(f"Same crop, where the models differ most (PSNR-Y of the whole image; {variant} reference)",
                 fontsize=9)
    return fig
