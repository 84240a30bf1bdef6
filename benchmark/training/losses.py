"""Training losses, one place each: ``LOSSES`` maps a recipe's ``losses[].type`` to its class.

Every loss is called as ``loss(sr, hr, aux) -> scalar`` on RGB in [0, 1] (the adapters convert the
authors' ranges), without its recipe weight (the trainer multiplies). ``aux`` holds what a model's
training forward hands out besides the image (``texture``: TTSR's pairs of LTE features of the
output and transferred textures). A loss that needs such extras names them in ``needs``.

A recipe entry may start late: ``after: {epochs: N}`` or ``after: {iterations: N}`` (TTSR's two
reconstruction-only init epochs; C2-Matching's 10,000 pixel-only steps before the GAN phase).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.paths import weights_dir
from core.registry import Registry
from models.checkpoint import read_state_dict
from models.weights import MissingWeights

from .discriminators import DISCRIMINATORS

LOSSES = Registry("loss")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet VGG19 (the file C2-Matching/DATSR/FRFSR load)
#: torchvision ``vgg19().features[:n]`` ends at the layer (conv5_4: MASA-SR's perceptual layer, before its ReLU)
VGG19_LAYERS = {"relu1_1": 2, "relu2_1": 7, "relu3_1": 12, "relu4_1": 21, "relu5_1": 30, "conv5_4": 35}


class Loss(nn.Module):
    needs: tuple[str, ...] = ()


@LOSSES.register("l1")
class L1(Loss):
    def forward(self, sr, hr, aux=None):
        return F.l1_loss(sr, hr)


@LOSSES.register("mse")
class MSE(Loss):
    def forward(self, sr, hr, aux=None):
        return F.mse_loss(sr, hr)


def vgg19_candidates() -> list[Path]:
    """Where the ImageNet VGG19 file is looked for: the weights root, then the models that ship it."""
    root = weights_dir()
    return [root / VGG19_FILE] + [root / arch / VGG19_FILE for arch in ("c2_matching", "datsr", "frfsr", "ssmtf")]


def vgg19_file(file: str | None = None, needed_by: str = "the perceptual loss") -> Path:
    """The ImageNet VGG19 file: ``file`` if given, else the first of :func:`vgg19_candidates`; never downloads."""
    paths = [Path(file).expanduser()] if file else vgg19_candidates()
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        raise MissingWeights(f"{needed_by} needs torchvision's ImageNet VGG19 (" + VGG19_FILE + ", "
                             "https://download.pytorch.org/models/" + VGG19_FILE + "); looked in:\n"
                             + "\n".join(f"  {p}" for p in paths)
                             + "\nPlace it there; nothing is downloaded.")
    return path


def imagenet_vgg19(layer: str = "relu5_1", file: str | None = None) -> nn.Sequential:
    """torchvision VGG19 ``features`` up to ``layer`` with the ImageNet weights, frozen; never downloads."""
    import torchvision

    net = torchvision.models.vgg19(weights=None).features[:VGG19_LAYERS[layer]]
    sd = read_state_dict(vgg19_file(file))
    net.load_state_dict({k[len("features."):]: v for k, v in sd.items()
                         if k.startswith("features.") and int(k.split(".")[1]) < VGG19_LAYERS[layer]})
    return net.eval().requires_grad_(False)


def load_vgg19_into(module: nn.Module, file: str | None = None) -> Path:
    """Copy the ImageNet VGG19 ``features.N.*`` tensors onto ``module``'s layers whose names end in the
    same index ``N`` (a slice of VGG19 that keeps torchvision's indices, e.g. TTSR's LTE: slice1.0,
    slice2.2, ... slice3.10). Every such layer must be found with the file's shape; other tensors (TTSR's
    fixed mean shift) are left alone. Returns the file read."""
    path = vgg19_file(file, needed_by=f"initialising {type(module).__name__} from ImageNet")
    sd = read_state_dict(path)
    new = {}
    for key, value in module.state_dict().items():
        parts = key.split(".")
        if len(parts) < 2 or not parts[-2].isdigit() or parts[-1] not in ("weight", "bias"):
            continue
        src = sd.get(f"features.{parts[-2]}.{parts[-1]}")
        if src is None or src.shape != value.shape:
            raise ValueError(f"{path}: no features.{parts[-2]}.{parts[-1]} of shape {tuple(value.shape)} for {key}")
        new[key] = src
    if not new:
        raise ValueError(f"{type(module).__name__} has no VGG19-indexed layers (names ending in .N.weight)")
    module.load_state_dict(new, strict=False)
    return path


@LOSSES.register("perceptual", source="TTSR loss/loss.py PerceptualLoss + model/Vgg19.py; C2-Matching "
                 "mmsr/models/losses.py PerceptualLoss (criterion fro)")
class Perceptual(Loss):
    """Distance of ImageNet-VGG19 features (default relu5_1) of SR and HR; inputs ImageNet-normalised.

    ``criterion``: ``mse`` (TTSR: mean squared difference), ``fro`` (C2-Matching: Frobenius norm of
    the whole batch's difference, not averaged) or ``l1`` (MASA-SR). ``bgr``: the VGG sees the channels
    in BGR order, as MASA-SR's trainer feeds it (its images are BGR; the normalisation stays RGB's).
    HR features carry no gradient.
    """

    def __init__(self, layer: str = "relu5_1", criterion: str = "mse", file: str | None = None,
                 vgg: nn.Module | None = None, bgr: bool = False):
        super().__init__()
        if layer not in VGG19_LAYERS:
            raise ValueError(f"perceptual layer must be one of {sorted(VGG19_LAYERS)}, got {layer!r}")
        self.bgr = bool(bgr)
        if criterion not in ("mse", "fro", "l1"):
            raise ValueError(f"perceptual criterion must be mse, fro or l1, got {criterion!r}")
        self.criterion = criterion
        self.vgg = vgg if vgg is not None else imagenet_vgg19(layer, file)
        self.vgg.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):  # the VGG stays in eval mode
        super().train(mode)
        self.vgg.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.vgg(((x.flip(1) if self.bgr else x) - self.mean) / self.std)

    def forward(self, sr, hr, aux=None):
        f_sr = self.features(sr)
        with torch.no_grad():
            f_hr = self.features(hr)
        if self.criterion == "fro":
            return torch.linalg.vector_norm(f_sr - f_hr)
        return (F.mse_loss if self.criterion == "mse" else F.l1_loss)(f_sr, f_hr)


@LOSSES.register("texture", source="TTSR loss/loss.py TPerceptualLoss (use_S False, type l2: the defaults)")
class Texture(Loss):
    """TTSR's transferal perceptual loss: mean over the three levels of the MSE between the LTE
    features of the output and the transferred texture maps T (``aux['texture']``). The official
    class defines a Gram matrix but its forward does not use it; neither does this one."""

    needs = ("texture",)

    def forward(self, sr, hr, aux=None):
        pairs = (aux or {}).get("texture")
        if not pairs:
            raise ValueError("the texture loss needs the model's texture features (a TTSR-style adapter)")
        return sum(F.mse_loss(a, b) for a, b in pairs) / len(pairs)


@LOSSES.register("adversarial", source="TTSR loss/loss.py AdversarialLoss (WGAN_GP); C2-Matching "
                 "mmsr/models/losses.py GANLoss('wgan') + gradient_penalty_loss, ref_restoration_model.py")
class Adversarial(Loss):
    """A discriminator with its own Adam, trained by :meth:`discriminator_step` before the generator's
    loss (both official trainers update D first, then score the output with the updated D).

    ``gan: wgan`` - D loss mean D(fake) - mean D(real) + gp_weight x (||grad D(interp)||_2 - 1)^2
    (interp = e real + (1-e) fake, e ~ U(0,1) per sample); generator loss -mean D(fake).
    ``gan: vanilla`` - binary cross-entropy on the logits (real 1, fake 0; generator: fake -> 1).
    ``gan: relativistic`` - MASA-SR's (ESRGAN's relativistic average GAN): D loss
    (BCE(D(r) - mean D(f), 1) + BCE(D(f) - mean D(r), 0)) / 2, each term differentiated through its first
    predictions only; generator the same with the labels swapped, D(r) held constant.
    ``d_steps`` D updates per step on the same batch (TTSR's GAN_k). ``input_range`` the range D
    sees (TTSR works in [-1, 1]); ``bgr`` its channel order (MASA-SR). ``scheduled``: D's learning rate
    follows the recipe's schedule (C2-Matching's MultiStepLR steps both optimisers; TTSR's and MASA's D
    keep theirs).
    """

    def __init__(self, discriminator: dict, crop_size: int, gan: str = "wgan", gp_weight: float = 10.0,
                 d_steps: int = 1, d_optimizer: dict | None = None, input_range=(0, 1), bgr: bool = False,
                 scheduled: bool = False):
        super().__init__()
        if gan not in ("wgan", "vanilla", "relativistic"):
            raise ValueError(f"adversarial gan must be wgan, vanilla or relativistic, got {gan!r}")
        d = dict(discriminator)
        kind = d.pop("type")
        self.bgr, self.scheduled = bool(bgr), bool(scheduled)
        if kind in ("ttsr", "masa") and "in_size" not in d:
            d["in_size"] = crop_size
        self.net_d = DISCRIMINATORS.create(kind, **d)
        o = {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, **(d_optimizer or {})}
        self.optimizer = torch.optim.Adam(self.net_d.parameters(), lr=float(o["lr"]), betas=tuple(o["betas"]),
                                          eps=float(o["eps"]), weight_decay=float(o["weight_decay"]))
        self.gan, self.gp_weight, self.d_steps = gan, float(gp_weight), int(d_steps)
        self.lo, self.hi = (float(v) for v in input_range)
        self.reduce_grads = None  # set by the trainer under DDP: averages D's gradients over processes

    def _range(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flip(1) if self.bgr else x) * (self.hi - self.lo) + self.lo

    @staticmethod
    def _bce(logits: torch.Tensor, label: float) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))

    def discriminator_loss(self, fake: torch.Tensor, real: torch.Tensor,
                           generator: torch.Generator | None = None) -> torch.Tensor:
        fake, real = self._range(fake), self._range(real)  # the penalty's gradient is taken in D's range
        d_real, d_fake = self.net_d(real), self.net_d(fake)
        if self.gan == "vanilla":
            return (self._bce(d_real, 1.0) + self._bce(d_fake, 0.0)) / 2
        if self.gan == "relativistic":
            # each term's gradient flows through its own predictions only (the official two backward passes)
            return (self._bce(d_real - d_fake.detach().mean(), 1.0)
                    + self._bce(d_fake - d_real.detach().mean(), 0.0)) / 2
        loss = d_fake.mean() - d_real.mean()
        if self.gp_weight:
            e = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator)
            hat = (e * real + (1 - e) * fake).requires_grad_(True)
            grad, = torch.autograd.grad(self.net_d(hat).sum(), hat, create_graph=True)
            loss = loss + self.gp_weight * (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
        return loss

    def discriminator_step(self, fake: torch.Tensor, real: torch.Tensor, seed: int | None = None) -> float:
        """``d_steps`` updates of D; ``seed`` draws the penalty's interpolation weights (the trainer keys
        it by (run seed, step), so a resumed run draws what an uninterrupted one does)."""
        fake, real = fake.detach(), real.detach()
        generator = None if seed is None else torch.Generator(real.device).manual_seed(seed)
        self.net_d.requires_grad_(True)
        for _ in range(self.d_steps):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.discriminator_loss(fake, real, generator)
            loss.backward()
            if self.reduce_grads is not None:
                self.reduce_grads(self.net_d)
            self.optimizer.step()
        self.net_d.requires_grad_(False)
        return float(loss.detach())

    def forward(self, sr, hr, aux=None):
        d_fake = self.net_d(self._range(sr))
        if self.gan == "vanilla":
            return self._bce(d_fake, 1.0)
        if self.gan == "relativistic":
            d_real = self.net_d(self._range(hr)).detach()
            return (self._bce(d_real - d_fake.mean(), 0.0) + self._bce(d_fake - d_real.mean(), 1.0)) / 2
        return -d_fake.mean()

    def train_state(self) -> dict:
        return {"net_d": {k: v.detach().cpu() for k, v in self.net_d.state_dict().items()},
                "optimizer": self.optimizer.state_dict()}

    def load_train_state(self, state: dict) -> None:
        self.net_d.load_state_dict(state["net_d"])
        self.optimizer.load_state_dict(state["optimizer"])


KEYS = {"type", "weight", "after"}


def build_loss(spec: dict, crop_size: int) -> Loss:
    """One recipe entry -> its loss module (the entry's other keys are the class's options)."""
    kwargs = {k: v for k, v in spec.items() if k not in KEYS}
    if spec["type"] == "adversarial":
        kwargs["crop_size"] = crop_size
    return LOSSES.create(spec["type"], **kwargs)


def start_step(spec: dict, steps_per_epoch: int) -> int:
    """First step (0-based) at which the entry counts: ``after: {epochs: N} | {iterations: N}``."""
    after = spec.get("after") or {}
    if set(after) - {"epochs", "iterations"}:
        raise ValueError(f"loss {spec['type']}: 'after' takes epochs or iterations, got {sorted(after)}")
    return int(after.get("iterations", 0)) + int(after.get("epochs", 0)) * steps_per_epoch
