"""Training losses, one place each: ``LOSSES`` maps a recipe's ``losses[].type`` to its class.

Every loss is called as ``loss(sr, hr, aux) -> scalar`` on RGB in [0, 1] (the adapters convert the
authors' ranges), without its recipe weight (the trainer multiplies). ``aux`` holds what a model's
training forward hands out besides the image (``texture``: TTSR's pairs of LTE features of the
output and transferred textures). A loss that needs such extras names them in ``needs``.
The contrastive extractor stages are the exception: their ``sr`` is the extractor's feature dict and
``aux`` carries the batch's extras (``flow``: the synthetic pair's ground truth, ``ref``).

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


#: MatConvNet's VGG19 input: RGB 0-255 minus the mean pixel (what SRNTT's vgg19.py feeds it)
MATCONVNET_MEAN = (123.68, 116.779, 103.939)


def matconvnet_vgg19(layer: str = "relu5_1", file: str | None = None) -> nn.Sequential:
    """torchvision's VGG19 ``features`` up to ``layer`` with the weights of MatConvNet's
    ``imagenet-vgg-verydeep-19.mat`` (SRNTT's file, ``$REFSR_WEIGHTS/srntt/``), frozen; never downloads."""
    from torchvision.models.vgg import cfgs, make_layers  # the features alone (no 100 M-parameter classifier)

    from models.srntt import MATCONVNET_VGG19, VGG19_CONVS, matconvnet_vgg19_state_dict
    from models.weights import official_path

    path = Path(file).expanduser() if file else official_path("srntt", MATCONVNET_VGG19)
    if not path.is_file():
        raise MissingWeights(f"the perceptual loss (vgg: matconvnet) needs MatConvNet's {MATCONVNET_VGG19} "
                             f"(http://www.vlfeat.org/matconvnet/models/{MATCONVNET_VGG19}, the file SRNTT "
                             f"matches with); looked in {path}. Place it there (or give losses[].file); nothing "
                             f"is downloaded.")
    net = make_layers(cfgs["E"])[:VGG19_LAYERS[layer]]
    convs = [i for i, m in enumerate(net) if isinstance(m, nn.Conv2d)]
    sd = matconvnet_vgg19_state_dict(path, upto=VGG19_CONVS[len(convs) - 1])
    net.load_state_dict({f"{i}.{leaf}": sd[f"vgg19/{name}/{tf}:0"]
                         for i, name in zip(convs, VGG19_CONVS) for leaf, tf in (("weight", "w"), ("bias", "b"))})
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
    ``weights``: ``torchvision`` (ImageNet VGG19, mean/std on [0, 1]) or ``matconvnet`` (SRNTT's
    MatConvNet VGG19 on 0-255 minus the mean pixel). HR features carry no gradient.
    """

    def __init__(self, layer: str = "relu5_1", criterion: str = "mse", file: str | None = None,
                 vgg: nn.Module | None = None, bgr: bool = False, weights: str = "torchvision"):
        super().__init__()
        if layer not in VGG19_LAYERS:
            raise ValueError(f"perceptual layer must be one of {sorted(VGG19_LAYERS)}, got {layer!r}")
        self.bgr = bool(bgr)
        if criterion not in ("mse", "fro", "l1"):
            raise ValueError(f"perceptual criterion must be mse, fro or l1, got {criterion!r}")
        self.criterion = criterion
        if weights not in ("torchvision", "matconvnet"):
            raise ValueError(f"perceptual weights must be torchvision or matconvnet, got {weights!r}")
        build = matconvnet_vgg19 if weights == "matconvnet" else imagenet_vgg19
        self.vgg = vgg if vgg is not None else build(layer, file)
        self.vgg.requires_grad_(False).eval()
        mean, std = ((tuple(m / 255 for m in MATCONVNET_MEAN), (1 / 255,) * 3) if weights == "matconvnet"
                     else (IMAGENET_MEAN, IMAGENET_STD))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

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


def gram(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C): F^T F with F the (H*W, C) feature matrix of each image."""
    f = x.flatten(2)
    return f @ f.transpose(1, 2)


@LOSSES.register("texture_gram", source="ZZUTK/SRNTT @93b9b34 SRNTT/model.py train(): loss_texture "
                 "(use_weight_map False, the main.py default); paper (CVPR 2019) eq. 6")
class TextureGram(Loss):
    """SRNTT's texture loss: for each level l (relu3_1, relu2_1, relu1_1 of the VGG19 the model
    matches with), the mean over (batch, C, C) of (Gr(M_l) - Gr(phi_l(SR)))^2 / (4 (H_l W_l C_l)^2),
    averaged over the levels. M_l are the swapped reference features, phi_l(SR) the same VGG's
    features of the output (``aux['texture']``: pairs (phi_l(SR), M_l)). The official normaliser
    ``4 (input_size^2 N_l)^2`` with N = 256, 512, 1024 is exactly (2 H_l W_l C_l)^2 at every level.
    The paper's weighting by the matching scores S*_l is off in the official default (and here)."""

    needs = ("texture",)

    def forward(self, sr, hr, aux=None):
        pairs = (aux or {}).get("texture")
        if not pairs:
            raise ValueError("the texture_gram loss needs the model's texture features (an SRNTT-style adapter)")
        total = 0.0
        for feat, target in pairs:
            c, h, w = feat.shape[1:]
            total = total + (gram(target) - gram(feat)).pow(2).mean() / (4.0 * (h * w * c) ** 2)
        return total / len(pairs)


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
    ``gp_norm``: the penalty's gradient norm per ``sample`` (WGAN-GP) or per pixel over the ``channel`` axis
    (SRNTT's official code reduces the squared gradient over the last, channel axis only).
    ``d_steps`` D updates per step on the same batch (TTSR's GAN_k). ``input_range`` the range D
    sees (TTSR works in [-1, 1]); ``bgr`` its channel order (MASA-SR). ``scheduled``: D's learning rate
    follows the recipe's schedule (``true``) or its own (a schedule mapping: the mmsr trainers of
    C2-Matching, DATSR, FRFSR and SSMTF step only optimizer_d; TTSR's and MASA's D keep theirs).
    """

    def __init__(self, discriminator: dict, crop_size: int, gan: str = "wgan", gp_weight: float = 10.0,
                 d_steps: int = 1, d_optimizer: dict | None = None, input_range=(0, 1), bgr: bool = False,
                 scheduled: bool | dict = False, gp_norm: str = "sample"):
        super().__init__()
        if gan not in ("wgan", "vanilla", "relativistic"):
            raise ValueError(f"adversarial gan must be wgan, vanilla or relativistic, got {gan!r}")
        d = dict(discriminator)
        kind = d.pop("type")
        self.bgr, self.scheduled = bool(bgr), bool(scheduled)
        self.schedule = dict(scheduled) if isinstance(scheduled, dict) else None  # None: the recipe's
        if gp_norm not in ("sample", "channel"):
            raise ValueError(f"adversarial gp_norm must be sample or channel, got {gp_norm!r}")
        self.gp_norm = gp_norm
        if kind in ("ttsr", "masa", "srntt") and "in_size" not in d:
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
            norm = grad.norm(2, dim=1) if self.gp_norm == "channel" else grad.flatten(1).norm(2, dim=1)
            loss = loss + self.gp_weight * (norm - 1).pow(2).mean()
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


def ground_truth_matches(flow: torch.Tensor, h: int, w: int, stride: int, border: float):
    """Ground-truth matches of one pair on the feature grids (C2-Matching's ``warp``).

    ``flow`` (H, W, 2): the [x, y] position in image 2 of every pixel of image 1. Feature position
    (i, j) of image 1 sits at pixel (stride i, stride j); it is kept when its image-2 position lies
    more than ``border`` px inside image 2's (stride h, stride w) frame. Returns the kept flat indices
    into image 1's grid, their (y, x) grid positions, and the rounded (y, x) grid positions in image 2.
    """
    pos = flow[::stride, ::stride, :2][:h, :w].reshape(-1, 2).to(torch.float64)
    x, y = pos[:, 0], pos[:, 1]
    keep = (x > border) & (x < stride * w - border) & (y > border) & (y < stride * h - border)
    ids = keep.nonzero().squeeze(1)
    grid1 = torch.stack(torch.meshgrid(torch.arange(h, device=flow.device), torch.arange(w, device=flow.device),
                                       indexing="ij")).reshape(2, -1)
    pos2 = torch.round(torch.stack([y[ids], x[ids]]) / stride).long()
    return ids, grid1, pos2


def _far(a: torch.Tensor, b: torch.Tensor, radius: float) -> torch.Tensor:
    """(n, m) mask: grid positions a[:, i] and b[:, j] further apart than ``radius`` (Chebyshev)."""
    return (a[:, :, None] - b[:, None, :]).abs().amax(0) > radius


class TooFewMatches(ValueError):
    """No pair of a batch has enough ground-truth matches for a correspondence loss."""


class _Correspondence(Loss):
    """Shared by the contrastive stages: per pair, the descriptors at the ground-truth matches.

    The output of the training forward is the extractor's ``{dense_features1, dense_features2}``
    (B, C, h, w); ``aux['flow']`` (B, H, W, 2) holds the ground truth of the synthetic pair (the
    ``pairs`` data of a recipe). Pairs with fewer than ``min_matches`` matches are left out of the
    batch mean, as the official trainer does (it fails when none is left; so does this one).
    """

    def __init__(self, scaling_steps: int = 2, border: float = 10.0, min_matches: int = 128):
        super().__init__()
        self.stride, self.border, self.min_matches = 2 ** int(scaling_steps), float(border), int(min_matches)

    def pairs(self, out: dict, aux: dict | None):
        flow = (aux or {}).get("flow")
        if flow is None or not isinstance(out, dict):
            raise ValueError(f"the {type(self).__name__.lower()} loss needs the extractor's features and the pairs' "
                             f"ground truth (a recipe with 'pairs' that trains an extractor role)")
        f1, f2 = out["dense_features1"], out["dense_features2"]
        for b in range(f1.shape[0]):
            c, h, w = f1[b].shape
            ids, grid1, pos2 = ground_truth_matches(flow[b], h, w, self.stride, self.border)
            if ids.numel() < self.min_matches:
                continue
            all1 = F.normalize(f1[b].reshape(c, -1), dim=0)
            d2 = F.normalize(f2[b][:, pos2[0], pos2[1]], dim=0)
            yield b, ids, grid1, pos2, all1, d2

    @staticmethod
    def mean(values: list, what: str) -> torch.Tensor:
        if not values:
            raise TooFewMatches(f"no pair of the batch has enough ground-truth matches for the {what} loss "
                             f"(larger crops, or a smaller min_matches)")
        return torch.stack(values).mean()


@LOSSES.register("contrastive", source="C2-Matching mmsr/models/teacher_contras_model.py loss_function "
                 "(options/train/stage1_teacher_contras_network.yml: margin 1, safe_radius 4, scaling_steps 2)")
class Contrastive(_Correspondence):
    """C2-Matching's contrastive correspondence loss (a hardest-negative margin loss, D2-Net style).

    Distances are 2 - 2 cos between L2-normalised descriptors. For every ground-truth match i the
    positive is d(a_i, b_i); the negative is the smaller of the hardest image-2 descriptor b_j and the
    hardest image-1 descriptor a_k whose grid position is more than ``safe_radius`` (Chebyshev, in
    feature cells) from the match. Loss per pair: mean_i relu(margin + positive - negative); the batch
    value is the mean over the pairs kept.
    """

    def __init__(self, margin: float = 1.0, safe_radius: float = 4.0, **kwargs):
        super().__init__(**kwargs)
        self.margin, self.safe_radius = float(margin), float(safe_radius)

    def forward(self, out, hr=None, aux=None):
        values = []
        for _, ids, grid1, pos2, all1, d2 in self.pairs(out, aux):
            d1 = all1[:, ids]
            positive = 2 - 2 * (d1 * d2).sum(0)
            near2 = ~_far(pos2, pos2, self.safe_radius)
            neg2 = (2 - 2 * d1.t() @ d2 + 10.0 * near2).amin(1)
            near1 = ~_far(grid1[:, ids], grid1, self.safe_radius)
            neg1 = (2 - 2 * d2.t() @ all1 + 10.0 * near1).amin(1)
            values.append(F.relu(self.margin + positive - torch.minimum(neg1, neg2)).mean())
        return self.mean(values, "contrastive")


@LOSSES.register("distillation", source="C2-Matching mmsr/models/student_contras_distillation_model.py "
                 "loss_function (options/train/stage2_student_contras_network.yml: distill_weight 15, "
                 "temperature 0.15)")
class Distillation(_Correspondence):
    """C2-Matching's teacher-student distillation: KL(teacher || student) of the correlation rows.

    For the ground-truth matches of a pair, the student's correlation a_i . b_j / T (i, j over the
    matches; its image 1 is the upsampled LR) is log-softmaxed over j; the teacher's, computed by the
    frozen stage-1 extractor on the HR image and the same reference, is softmaxed; KL summed and divided
    by the number of matches (``batchmean``). The batch value is the mean over the pairs kept.

    ``teacher``: ``{model: c2_matching, weights: <stage-1 run's OUT or a file>, role: extractor}``;
    tests may pass the module itself.
    """

    def __init__(self, teacher, temperature: float = 0.15, **kwargs):
        super().__init__(**kwargs)
        self.temperature = float(temperature)
        self.teacher = teacher if isinstance(teacher, nn.Module) else load_role(**teacher)
        self.teacher.requires_grad_(False).eval()

    def train(self, mode: bool = True):  # the teacher stays in eval mode
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, out, hr=None, aux=None):
        ref = (aux or {}).get("ref")
        if hr is None or ref is None:
            raise ValueError("the distillation loss needs the HR image and the reference (the teacher's inputs)")
        with torch.no_grad():
            t_out = self.teacher(hr, ref)
        t1, t2 = t_out["dense_features1"], t_out["dense_features2"]
        values = []
        for b, ids, _, pos2, all1, d2 in self.pairs(out, aux):
            c = t1.shape[1]
            td1 = F.normalize(t1[b].reshape(c, -1), dim=0)[:, ids]
            td2 = F.normalize(t2[b][:, pos2[0], pos2[1]], dim=0)
            student = F.log_softmax(all1[:, ids].t() @ d2 / self.temperature, dim=1)
            teacher = F.softmax(td1.t() @ td2 / self.temperature, dim=1)
            values.append(F.kl_div(student, teacher, reduction="batchmean"))
        return self.mean(values, "distillation")


def load_role(model: str, weights: str | None = None, role: str = "extractor") -> nn.Module:
    """One role of a zoo model loaded from a file or a run's OUT folder (a frozen teacher)."""
    from models import create_model, get_spec
    from models.registry import split_name
    from models.weights import load_weights, parse_overrides

    if not weights:
        raise ValueError(f"the distillation teacher: give the {role} file of {model} (a run's OUT folder or the file), "
                         f"e.g. --set losses.1.teacher.weights=<the c2_matching.teacher run's OUT>")
    arch, tag = split_name(model)
    names = {c.role: c.filename for c in get_spec(arch).tag(tag).files}
    net = create_model(model)
    load_weights(net, parse_overrides(weights, [role], names))
    return net.checkpoint_modules()[role]


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
