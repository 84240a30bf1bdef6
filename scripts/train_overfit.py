"""Overfit check of every model with a recipe: 200 steps on 4 fixed demo crops.

  python scripts/train_overfit.py [--steps 200] [--full] [--models masa.rec,ttsr.rec]

The crops are 64x64 HR patches of four real photos shipped in scikit-image (astronaut, chelsea,
coffee, rocket), each with the reference cut 8 px further along the same photo. Augmentations off,
batch 4 (all crops every step), the recipe's optimiser (``--lr`` to change it). Passes when the
training loss drops by >= 50 % (mean of the first 10 steps vs the last 10) and the PSNR-Y on those
crops (the harness's protocol code) ends above bicubic's. Tiny architectures (spec.test_kwargs)
unless --full.
"""
from __future__ import annotations

import argparse
import json
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

    from benchmark.training import list_recipes, train
    from benchmark.training.trainer import evaluate_model
    from models import create_model, get_spec
    from models.weights import MissingWeights, load_weights

    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--models", default=",".join(list_recipes()))
    p.add_argument("--full", action="store_true", help="official architectures (slow on CPU)")
    p.add_argument("--lr", type=float, help="override the recipe's learning rate")
    p.add_argument("--kwargs", help="JSON architecture options for every model listed (instead of test_kwargs)")
    args = p.parse_args(argv)
    ok_all = True
    with tempfile.TemporaryDirectory() as tmp:
        ds_dir = demo_crops(Path(tmp) / "overfit4")
        ds = Dataset.open(ds_dir)
        for name in args.models.split(","):
            kwargs = {} if args.full else json.loads(args.kwargs) if args.kwargs else get_spec(name).test_kwargs
            over = {"iterations": args.steps, "batch_size": 4, "crop_size": SIZE, "ref_size": SIZE,
                    "validate_every": 0, "checkpoint_every": args.steps, "schedule": {"type": "constant"},
                    "augment": {"hflip": 0, "vflip": 0, "rot90": 0, "swap": 0, "color_jitter": None,
                                "shuffle_ref": None, "ref_independent": True, "geometric_from_epoch": 0}}
            if args.lr:
                over["optimizer.lr"] = args.lr
            out = Path(tmp) / name
            torch.manual_seed(0)
            try:
                res = train(name, ds_dir, out, overrides=over, model_kwargs=kwargs, device="cpu", progress=False,
                            log_every=1, val_limit=0)
            except MissingWeights as exc:  # e.g. C2-Matching's frozen official extractor
                print(f"{name:<10} SKIPPED: {str(exc).splitlines()[0]}", flush=True)
                continue
            log = pd.read_csv(out / "log.csv")
            loss = log[log["kind"] == "train"]["loss"].to_numpy()
            first, last = loss[:10].mean(), loss[-10:].mean()
            model = create_model(name, **kwargs)
            load_weights(model, {v["role"]: out / f for f, v in res["weights"]["files"].items()})
            vals = evaluate_model(model, ds, ds.samples(split="train"), "refsr-standard", get_spec(name).scale,
                                  torch.device("cpu"), ["psnr_y"])
            drop = 1 - last / first
            ok = drop >= 0.5 and vals["psnr_y"] > vals["bicubic_psnr_y"]
            ok_all &= ok
            print(f"{name:<10} {json.dumps(kwargs)} lr {args.lr or 'recipe'}: loss {first:.4f} -> {last:.4f} ({100 * drop:.0f} % lower)  PSNR-Y {vals['psnr_y']:.2f} dB "
                  f"vs bicubic {vals['bicubic_psnr_y']:.2f} dB  {'PASS' if ok else 'FAIL'}", flush=True)
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
