"""Our C2-Matching contrastive and distillation losses against the official ``loss_function``s.

Usage: python scripts/c2_contrastive_vs_official.py /path/to/C2-Matching [--pairs 4] [--seed 0]

Imports ``mmsr/models/teacher_contras_model.py`` and ``student_contras_distillation_model.py`` from a
checkout of yumingj/C2-Matching (@6d60149e) with their framework imports stubbed (only the loss code
runs), feeds both sides the same random features (B x 256 x 40 x 40, the conv3_1 grid of a 160x160
crop) and the flows of random homographies from our ``homography_pair`` (the official ContrasDataset's
draw: window 160, corners moved by [0, 10) px), and prints each side's value and the relative difference,
and for the contrastive loss the largest difference of the two sides' gradients w.r.t. both feature maps
(relative to the largest gradient entry).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmark.training.data import homography_pair  # noqa: E402
from benchmark.training.losses import Contrastive, Distillation  # noqa: E402


def import_official(repo: Path, name: str) -> types.ModuleType:
    """One official model module with ``mmsr.models.networks``/``mmsr.utils``/``.base_model`` stubbed."""
    for mod in ("mmsr", "mmsr.models", "mmsr.models.networks", "mmsr.models.losses", "mmsr.utils",
                "mmsr.models.base_model"):
        sys.modules.setdefault(mod, types.ModuleType(mod))
    sys.modules["mmsr"].__path__ = []
    sys.modules["mmsr.models"].__path__ = []
    sys.modules["mmsr.utils"].ProgressBar = object
    sys.modules["mmsr.models.base_model"].BaseModel = object
    spec = importlib.util.spec_from_file_location(f"mmsr.models.{name}", repo / "mmsr" / "models" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("repo", type=Path, help="a checkout of yumingj/C2-Matching")
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    teacher_mod = import_official(args.repo, "teacher_contras_model")
    student_mod = import_official(args.repo, "student_contras_distillation_model")
    g = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    img = np.zeros((160, 160, 3), np.uint8)
    flow = torch.stack([torch.from_numpy(homography_pair(img, (0, 10), 160, rng)[1]) for _ in range(args.pairs)])
    s1, s2, t1, t2 = (torch.randn(args.pairs, 256, 40, 40, generator=g) for _ in range(4))
    opts = {"margin": 1.0, "safe_radius": 4, "scaling_steps": 2, "distill_weight": 15.0, "temperature": 0.15}

    def official(cls):
        obj = cls.__new__(cls)
        obj.__dict__.update(opts, device=torch.device("cpu"), transformed_coordinates=flow,
                            output={"dense_features1": s1, "dense_features2": s2},
                            teacher_feat={"dense_features1": t1, "dense_features2": t2})
        return obj.loss_function()

    t_loss = float(official(teacher_mod.TeacherContrasModel)[0])
    s_loss, _, _, s_distill = official(student_mod.StudentContrasDistillationModel)

    class Teacher(torch.nn.Module):
        def forward(self, hr, ref):
            return {"dense_features1": t1, "dense_features2": t2}

    feats, aux = {"dense_features1": s1, "dense_features2": s2}, {"flow": flow, "ref": torch.zeros(1)}
    ours_c = float(Contrastive(margin=1.0, safe_radius=4)(feats, None, aux))
    ours_d = float(Distillation(Teacher(), temperature=0.15)(feats, torch.zeros(1), aux))
    rows = [("contrastive (stage 1 loss)", t_loss, ours_c), ("distillation term", float(s_distill), ours_d),
            ("stage 2 loss (contrastive + 15 x distillation)", float(s_loss), ours_c + 15 * ours_d)]
    for what, theirs, ours in rows:
        print(f"{what:<48} official {theirs:.7f}  ours {ours:.7f}  rel. diff {abs(ours - theirs) / abs(theirs):.1e}")
    grads = []
    for side in ("official", "ours"):
        f1, f2 = s1.clone().requires_grad_(True), s2.clone().requires_grad_(True)
        if side == "official":
            obj = teacher_mod.TeacherContrasModel.__new__(teacher_mod.TeacherContrasModel)
            obj.__dict__.update(opts, device=torch.device("cpu"), transformed_coordinates=flow,
                                output={"dense_features1": f1, "dense_features2": f2})
            loss = obj.loss_function()[0].sum()
        else:
            loss = Contrastive(margin=1.0, safe_radius=4)({"dense_features1": f1, "dense_features2": f2}, None, aux)
        grads.append(torch.autograd.grad(loss, (f1, f2)))
    for k, name in enumerate(("dense_features1 (query branch)", "dense_features2 (reference branch)")):
        a, b = grads[0][k], grads[1][k]
        print(f"contrastive gradient w.r.t. {name:<34} max |diff| / max |official| "
              f"{float((a - b).abs().max() / a.abs().max()):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
