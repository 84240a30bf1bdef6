"""Overfit check of every model with a recipe: 200 steps on 4 fixed demo crops.

  python scripts/train_overfit.py [--steps 200] [--lr 1e-3] [--models masa.rec,ttsr] [--stand-ins]

A check of the training pipeline, not of a recipe's numbers. The crops are 64x64 HR patches of four
real photos shipped in scikit-image (astronaut, chelsea, coffee, rocket), each with the reference cut
8 px further along the same photo. Augmentations off, batch 4 (all crops every step), the recipe's
losses, optimiser and parameter groups, but its own learning rate (**1e-3** by default for every
model: at the recipes' 1e-4, 200 Adam steps are too few for the -50 % bar) and a constant schedule
(with 4 crops an epoch is one step, so an epoch-based schedule would run 200 epochs of decay).
Losses that start late in a recipe (``after``) start at step 20 here. A recipe that starts from
another's weights (``init_from``: MASA's GAN, from a trained masa.rec) starts from scratch, and its
non-reconstruction losses start at step 20 too, the 20 L1-only steps standing in for the
reconstruction training it would start from. Passes when the generator's descent objective (the sum
of its weighted l1/mse, perceptual and texture terms; for L1-only recipes the whole loss) drops by
>= 50 % (mean of the first 10 steps in which all those terms count vs the last 10) and the PSNR-Y on
those crops (the harness's protocol code) ends above bicubic's. The adversarial term is not in the
objective: it is the generator's side of a two-player game and rises as the discriminator learns,
so it is not a quantity training lowers. Small architectures (OVERFIT_KWARGS, else
spec.test_kwargs) unless --full.

Frozen official files a recipe needs (C2-Matching's extractor and VGG19, the perceptual loss's
ImageNet VGG19) are never downloaded: a model whose files are missing is SKIPPED, or with
--stand-ins runs with randomly initialised stand-ins of those files (said in its output line).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builders.demo_corpus import skimage_data_dir  # noqa: E402
from builders.images import read_rgb  # noqa: E402
from builders.manifest import Dataset  # noqa: E402
from builders.report import BuildReport  # noqa: E402
from builders.writer import Array, Row, make_spec, write_dataset  # noqa: E402

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")
SIZE = 64
LATE_START = 20
RECONSTRUCTION = ("l1", "mse")
#: the terms the loss bar measures; the adversarial term is left out: it is one player's side of a
#: two-player game whose value rises as the discriminator improves, not a quantity gradient descent lowers
DESCENT = RECONSTRUCTION + ("perceptual", "texture")
#: architectures of the check: MASA and TTSR at 32 channels, one block per stage (their 8-channel test
#: configs barely represent the crops: MASA stays above -50 %, TTSR beats bicubic by 0.05 dB with L1 alone)
OVERFIT_KWARGS = {"masa": {"nf": 32, "n_blks": [1, 1, 1], "n_blks_dec": [1, 1, 1, 1, 1, 1]},
                  "ttsr": {"n_feats": 32, "num_res_blocks": [1, 1, 1, 1]}}


def objective_drop(train_rows: pd.DataFrame) -> tuple[float, float]:
    """Mean of the generator's descent objective (the weighted DESCENT terms of log.csv, summed) over
    the first 10 steps in which all of them count and over the last 10 steps."""
    terms = [c for c in DESCENT if c in train_rows and train_rows[c].notna().any()]
    loss = train_rows[train_rows[terms].notna().all(axis=1)][terms].sum(axis=1).to_numpy()
    return float(loss[:10].mean()), float(loss[-10:].mean())


def stand_ins(name: str, kwargs: dict, folder: Path) -> list[str]:
    """Random-init files for the frozen roles and the perceptual VGG19 a run of ``name`` needs and
    that are missing; returns what was made. ``folder`` becomes $REFSR_WEIGHTS for the run."""
    import torch
    import torchvision

    from benchmark.training.losses import VGG19_FILE, vgg19_candidates
    from benchmark.training.recipe import load_recipe
    from models import create_model, get_spec
    from models.registry import split_name
    from models.weights import official_path

    arch, tag = split_name(name)
    recipe = load_recipe(name)
    files = {c.role: c.filename for c in get_spec(arch).tag(tag).files}
    made = []
    model = create_model(name, **kwargs)
    for role in set(files) - set(recipe["train_roles"] or [next(iter(files))]):
        real = official_path(arch, files[role])
        (folder / arch).mkdir(parents=True, exist_ok=True)
        if real.is_file():
            (folder / arch / files[role]).symlink_to(real)
        else:
            torch.save(model.checkpoint_modules()[role].state_dict(), folder / arch / files[role])
            made.append(role)
    if any(spec["type"] == "perceptual" for spec in recipe["losses"]):
        real = next((p for p in vgg19_candidates() if p.is_file()), None)
        if real is not None:
            (folder / VGG19_FILE).symlink_to(real)
        else:
            vgg = torchvision.models.vgg19(weights=None).features
            torch.save({f"features.{k}": v for k, v in vgg.state_dict().items()}, folder / VGG19_FILE)
            made.append("perceptual VGG19")
    return made


def demo_crops(out: Path) -> Path:
    def rows():
        for i, name in enumerate(PHOTOS):
            img = read_rgb(skimage_data_dir() / name)[0]
            y, x = img.shape[0] // 3, img.shape[1] // 3
            hr, ref = f"train/hr/{i}.png", f"train/ref/{i}.png"
            yield Row({"sample_id": f"train_{i}", "split": "train", "group": name, "level": 1, "hr": hr, "ref": ref},
                      {hr: Array(np.ascontiguousarray(img[y:y + SIZE, x:x + SIZE])),
                       ref: Array(np.ascontiguousarray(img[y + 8:y + 8 + SIZE, x + 8:x + 8 + SIZE]))})

    spec = make_spec(name="overfit4", kind="recipe", created_by="scripts/train_overfit.py", version="1", config={},
                     seed=0)
    write_dataset(out, rows(), spec, BuildReport("overfit4"))
    return out


def main(argv=None) -> int:
    import torch

    from benchmark.training import list_recipes, load_recipe, train
    from benchmark.training.trainer import evaluate_model
    from models import create_model, get_spec
    from models.weights import MissingWeights, load_weights, resolve_weights

    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--models", default=",".join(list_recipes()))
    p.add_argument("--full", action="store_true", help="official architectures (slow on CPU)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate of every group's base (default 1e-3)")
    p.add_argument("--kwargs", help="JSON architecture options for every model listed (instead of OVERFIT_KWARGS)")
    p.add_argument("--out", help="keep each run (log.csv, weights) under OUT/<name> instead of a temporary folder")
    p.add_argument("--stand-ins", action="store_true",
                   help="random-init stand-ins for missing frozen files (pipeline check only)")
    args = p.parse_args(argv)
    ok_all = True
    with tempfile.TemporaryDirectory() as tmp:
        ds_dir = demo_crops(Path(tmp) / "overfit4")
        ds = Dataset.open(ds_dir)
        for name in args.models.split(","):
            arch = get_spec(name).name
            kwargs = ({} if args.full else json.loads(args.kwargs) if args.kwargs
                      else OVERFIT_KWARGS.get(arch, get_spec(name).test_kwargs))
            recipe = load_recipe(name)
            late = [spec.get("after") or (recipe.get("init_from") and spec["type"] not in RECONSTRUCTION)
                    for spec in recipe["losses"]]
            scale = args.lr / float(recipe["optimizer"]["lr"])  # parameter groups keep their ratios
            over = {"iterations": args.steps, "batch_size": 4, "crop_size": SIZE, "ref_size": SIZE,
                    "validate_every": 0, "checkpoint_every": args.steps, "schedule": {"type": "constant"},
                    "optimizer.lr": args.lr, "init_from": None,
                    "optimizer.param_groups": [{**g, "lr": g["lr"] * scale}
                                               for g in recipe["optimizer"]["param_groups"]],
                    "losses": [{**spec, "after": {"iterations": LATE_START}} if is_late else spec
                               for spec, is_late in zip(recipe["losses"], late)],
                    "augment": {"hflip": 0, "vflip": 0, "rot90": 0, "transpose": 0, "swap": 0, "color_jitter": None,
                                "shuffle_ref": None, "ref_independent": True, "geometric_from_epoch": 0}}
            out = (Path(args.out) if args.out else Path(tmp)) / name
            note = ""
            old = os.environ.get("REFSR_WEIGHTS")
            if args.stand_ins:
                folder = Path(tmp) / f"weights-{name}"
                folder.mkdir()
                made = stand_ins(name, kwargs, folder)
                os.environ["REFSR_WEIGHTS"] = str(folder)
                note = f" [random stand-ins: {', '.join(made)}]" if made else ""
            torch.manual_seed(0)
            try:
                res = train(name, ds_dir, out, overrides=over, model_kwargs=kwargs, device="cpu", progress=False,
                            log_every=1, val_limit=0)
                model = create_model(name, **kwargs)
                load_weights(model, resolve_weights(name, out).files)
            except MissingWeights as exc:  # e.g. C2-Matching's frozen official extractor
                print(f"{name:<16} SKIPPED: {str(exc).splitlines()[0]} (--stand-ins runs it with random ones)",
                      flush=True)
                continue
            finally:
                if args.stand_ins:
                    os.environ.pop("REFSR_WEIGHTS") if old is None else os.environ.__setitem__("REFSR_WEIGHTS", old)
            log = pd.read_csv(out / "log.csv")
            train_rows = log[log["kind"] == "train"]
            rec = next(c for c in RECONSTRUCTION if c in train_rows and train_rows[c].notna().all())
            first, last = objective_drop(train_rows)
            rec_first, rec_last = train_rows[rec].iloc[:10].mean(), train_rows[rec].iloc[-10:].mean()
            vals = evaluate_model(model, ds, ds.samples(split="train"), "refsr-standard", get_spec(name).scale,
                                  torch.device("cpu"), ["psnr_y"])
            drop = 1 - last / first
            ok = drop >= 0.5 and vals["psnr_y"] > vals["bicubic_psnr_y"]
            ok_all &= ok
            terms = "+".join(spec["type"] for spec in recipe["losses"])
            print(f"{name:<16} {json.dumps(kwargs)} lr {args.lr:g} losses {terms}: objective {first:.4f} -> "
                  f"{last:.4f} ({100 * drop:.0f} % lower; {rec} {rec_first:.4f} -> {rec_last:.4f}, "
                  f"{100 * (1 - rec_last / rec_first):.0f} %)  PSNR-Y {vals['psnr_y']:.2f} dB vs bicubic "
                  f"{vals['bicubic_psnr_y']:.2f} dB  {'PASS' if ok else 'FAIL'}{note}  (step {res['step']})",
                  flush=True)
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
