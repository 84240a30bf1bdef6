"""Is the training loader the bottleneck? Crops/s of the loader against crops/s of the model's steps.

  python scripts/train_loader_speed.py [--dataset DIR] [--models masa.rec,ttsr.rec] [--workers 0]
                                       [--batch-size 9] [--small]

For each recipe: the loader alone (the recipe's crops, augmentations and LR kernel; ``--workers``
processes) for 10 batches, then 3 timed training steps of the model (forward, loss, backward, after
one warm-up) on one loaded batch; prints both in crops/s and their ratio (loader / model: above 1 the
loader keeps up). Without --dataset it writes 16 real-photo train pairs of 160x160 (scikit-image's
photos, reference 8 px along) to a scratch folder. --small uses the models' test architectures.
Frozen official files a recipe needs must be present (the model is SKIPPED otherwise).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builders.demo_corpus import skimage_data_dir  # noqa: E402
from builders.images import read_rgb  # noqa: E402
from builders.report import BuildReport  # noqa: E402
from builders.writer import Array, Row, make_spec, write_dataset  # noqa: E402

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")


def photo_pairs(out: Path, size: int = 160) -> Path:
    def rows():
        for i, name in enumerate(PHOTOS):
            img = read_rgb(skimage_data_dir() / name)[0]
            for j, (y, x) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
                y0, x0 = y * (img.shape[0] - size - 8), x * (img.shape[1] - size - 8)
                hr, ref = f"train/hr/{i}_{j}.png", f"train/ref/{i}_{j}.png"
                yield Row({"sample_id": f"train_{i}_{j}", "split": "train", "group": name, "level": 1, "hr": hr,
                           "ref": ref},
                          {hr: Array(np.ascontiguousarray(img[y0:y0 + size, x0:x0 + size])),
                           ref: Array(np.ascontiguousarray(img[y0 + 8:y0 + 8 + size, x0 + 8:x0 + 8 + size]))})

    spec = make_spec(name="loader16", kind="recipe", created_by="scripts/train_loader_speed.py", version="1",
                     config={}, seed=0)
    write_dataset(out, rows(), spec, BuildReport("loader16"))
    return out


def main(argv=None) -> int:
    from benchmark.training import TrainConfig, Trainer
    from benchmark.training.bench import bench_loader
    from models import get_spec
    from models.weights import MissingWeights

    p = argparse.ArgumentParser()
    p.add_argument("--dataset", help="a dataset folder with a train split (default: 16 photo pairs, 160x160)")
    p.add_argument("--models", default="masa.rec,ttsr.rec")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--batch-size", type=int, help="default: the recipe's")
    p.add_argument("--small", action="store_true", help="the models' test architectures")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ds = args.dataset or photo_pairs(Path(tmp) / "loader16")
        for name in args.models.split(","):
            over = {"batch_size": args.batch_size} if args.batch_size else {}
            kwargs = get_spec(name).test_kwargs if args.small else None
            try:
                trainer = Trainer(TrainConfig(model=name, dataset=str(ds), out=str(Path(tmp) / name), overrides=over,
                                              model_kwargs=kwargs, device="auto", workers=args.workers,
                                              progress=False))
            except MissingWeights as exc:
                print(f"{name:<16} SKIPPED: {str(exc).splitlines()[0]}", flush=True)
                continue
            res = bench_loader(trainer)
            ratio = res["loader_crops_per_s"] / res["model_crops_per_s"]
            print(f"{name:<16} {json.dumps(kwargs or {})} loader/model = {ratio:.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
