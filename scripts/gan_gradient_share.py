"""How hard a GAN recipe's adversarial term pulls on the generator, at the end of an overfit-check run.

  python scripts/gan_gradient_share.py OUT/<name>      (OUT: scripts/train_overfit.py --out OUT)

A diagnostic of the check, not a check: from the run's last checkpoint (generator, discriminator) it
recomputes, on the check's 4 crops in the training forward, the gradient that the weighted L1 term and
the weighted adversarial term each send to the generator's parameters, and prints their norms, the ratio
and the cosine between them (negative: the terms pull against each other), and the discriminator's
outputs on the 4 real crops and the 4 outputs (a discriminator that has memorised the crops separates
them widely).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    import torch
    import torch.nn.functional as F

    from benchmark.training.adapters import TrainForward
    from benchmark.training.data import Item, TrainCrops, train_table
    from benchmark.training.losses import build_loss
    from builders.manifest import Dataset
    from models import create_model, get_spec
    from train_overfit import demo_crops

    p = argparse.ArgumentParser()
    p.add_argument("run", help="a check run's folder (train_overfit.py --out OUT: OUT/<name>)")
    args = p.parse_args(argv)
    run = Path(args.run)
    info = json.loads((run / "run.json").read_text())
    recipe, config = info["recipe"], info["config"]
    state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    size = int(recipe["crop_size"])
    with tempfile.TemporaryDirectory() as tmp:
        ds = Dataset.open(demo_crops(Path(tmp) / "overfit4", size))
        crops = TrainCrops(ds, train_table(ds), recipe["protocol"], get_spec(recipe["model"]).scale, size, size,
                           {}, 0, 1)
        batch = [crops[Item(i, 0, i)] for i in range(len(crops))]
    lr, ref, hr = (torch.stack([b[k] for b in batch]) for k in ("lr", "ref", "hr"))
    model = create_model(recipe["model"], **config["model_kwargs"])
    model.load_state_dict(state["model"])
    forward = TrainForward(model).train()
    i = next(i for i, s in enumerate(recipe["losses"]) if s["type"] == "adversarial")
    spec = recipe["losses"][i]
    adv = build_loss(spec, size)
    adv.load_train_state(state["losses"][str(i)])
    adv.train()  # the discriminator scores in training mode, as in the run
    l1_weight = next(s.get("weight", 1.0) for s in recipe["losses"] if s["type"] == "l1")
    params = [q for q in model.parameters() if q.requires_grad]

    def gradient(term):
        model.zero_grad(set_to_none=True)
        value = term(forward(lr, ref)[0])
        value.backward()
        flat = torch.cat([(q.grad if q.grad is not None else torch.zeros_like(q)).flatten() for q in params])
        return float(value.detach()), flat

    v_l1, g_l1 = gradient(lambda sr: l1_weight * F.l1_loss(sr, hr))
    v_adv, g_adv = gradient(lambda sr: float(spec["weight"]) * adv(sr, hr))
    with torch.no_grad():
        sr = forward(lr, ref)[0]
        d_real, d_fake = (adv.net_d(adv._range(x)).flatten().tolist() for x in (hr, sr))
    print(f"{recipe['model']} step {state['step']}: weighted L1 {v_l1:.4f} (gradient norm {g_l1.norm():.3e}); "
          f"weighted adversarial ({spec['gan']}, x{spec['weight']:g}) {v_adv:.3g} (gradient norm {g_adv.norm():.3e}); "
          f"adversarial / L1 gradient {float(g_adv.norm() / g_l1.norm()):.3g}, cosine "
          f"{float(F.cosine_similarity(g_adv, g_l1, dim=0)):.3f}")
    print("discriminator on the real crops", " ".join(f"{v:.2f}" for v in d_real),
          "| on the outputs", " ".join(f"{v:.2f}" for v in d_fake))
    return 0


if __name__ == "__main__":
    sys.exit(main())
