"""SRNTT (Zhang, Wang, Lin, Qi, CVPR 2019): the PyTorch form of the official TensorFlow model.

Facts from ZZUTK/SRNTT (``SRNTT/model.py`` ``SRNTT.model``/``SRNTT.test``, ``SRNTT/swap.py``,
``SRNTT/vgg19.py``, the vendored ``SRNTT/tensorlayer``), test mode with one reference:

* images are uint8; the reference is cropped to a multiple of 4; the LR is upsampled ×4 and the
  reference down- and up-sampled ×4 with ``scipy.misc.imresize(..., 'bicubic')``, i.e. PIL bicubic
  on uint8 (reproduced bit-exactly here);
* VGG19 (MatConvNet ``imagenet-vgg-verydeep-19.mat``; input RGB 0–255 minus the mean pixel)
  relu3_1 of LR↑ is matched against relu3_1 of Ref↓↑: 3×3 patches, stride 1, reference patches
  L2-normalised, argmax of the correlation (first index wins ties);
* the matched positions copy relu3_1 / relu2_1 / relu1_1 patches (3×3, 6×6, 12×12, stride 1, 2, 4)
  of the raw reference; overlaps are averaged;
* the network sees the LR in [-1, 1]: content extractor (conv, 16 residual blocks with BN, conv+BN,
  skip) and texture transfer at three scales (16, 8, 4 residual blocks, sub-pixel ×2 via
  ``tf.depth_to_space``), tanh output in [-1, 1]. BN is TensorLayer's (eps 1e-5, moving statistics).

State-dict keys map one-to-one onto the official TF variable names (:func:`tf_to_torch_key`); the
official weight files (TensorLayer ``.npz`` lists, the MatConvNet ``.mat``) load through
:meth:`SRNTT.read_checkpoint` without TensorFlow.
"""
from __future__ import annotations

import io
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import CheckpointFile, MemoryCost, ModelSpec, RefSRModel, WeightTag
from core.resize import pil_bicubic_tensor
from .checkpoint import CheckpointError, read_state_dict
from .pretrained import NumpyOnlyUnpickler
from .registry import register_model

_REPO = "https://github.com/ZZUTK/SRNTT"
_NPZ_URL = f"{_REPO}/tree/master/SRNTT/models/SRNTT"
MATCONVNET_VGG19 = "imagenet-vgg-verydeep-19.mat"
_COMMIT = "93b9b34011742694b8b04ef570894edd193c03ed"
# the .npz files are committed in the official repository (README: "this repo provides two types of
# pre-trained SRNTT models in SRNTT/models/SRNTT"); GitHub serves them raw at the pinned commit
_RAW = f"{_REPO}/raw/{_COMMIT}/SRNTT/models/SRNTT"
_UPSCALE = CheckpointFile("upscale.npz", "content_extractor", _NPZ_URL, download=f"{_RAW}/upscale.npz")
_VGG19 = CheckpointFile(MATCONVNET_VGG19, "vgg19", f"http://www.vlfeat.org/matconvnet/models/{MATCONVNET_VGG19}")

SPEC = ModelSpec(
    name="srntt",
    scale=4,
    lr_multiple=1,
    ref_multiple=4,  # the official test crops the reference to a multiple of 4 (also done inside)
    max_ref_side=2560,
    memory=MemoryCost(base_mib=45, per_lr_px=52122, per_ref_px=576),  # scripts/memory_zoo.py --fit
    num_refs=1,
    paper="Zhang, Wang, Lin, Qi. Image Super-Resolution by Neural Texture Transfer. CVPR 2019",
    official_repo=_REPO,
    official_commit=_COMMIT,
    licence="none stated (the repository has no LICENSE file)",
    tags=(
        WeightTag("", (_UPSCALE, CheckpointFile("srntt.npz", "texture_transfer", _NPZ_URL, download=f"{_RAW}/srntt.npz"), _VGG19),
                  "texture transfer trained with all losses (the paper's SRNTT)"),
        WeightTag("init", (_UPSCALE, CheckpointFile("srntt_init.npz", "texture_transfer", _NPZ_URL,
                                         download=f"{_RAW}/srntt_init.npz"), _VGG19),
                  "texture transfer trained with the reconstruction loss only ('SRNTT-l2')"),
    ),
    test_kwargs={"num_res_blocks": 4},
    notes="texture_transfer: srntt.npz (all losses) or srntt_init.npz (reconstruction loss only, "
          "'SRNTT-l2'); both ship in the official repository under SRNTT/models/SRNTT/ beside "
          "upscale.npz (content extractor). vgg19: the MatConvNet file the official code downloads; "
          "torchvision's vgg19-dcbb9e9d.pth also loads with SRNTT(vgg='torchvision') but is a "
          "different network, so matches (and outputs) differ from the authors'. Not reproduced: the "
          "official test tiles LR images with h*w*16 > 2046^2 into 128x128 patches (stride 100) and "
          "averages the uint8 tiles; this model runs the whole image. Parameters (official TF "
          "graph, tests/fixtures/keys/srntt.json): content extractor 1,518,147 + texture transfer "
          "2,865,347 = 4,383,494 learned (BN moving statistics excluded; 295,619 of them in the content "
          "extractor's own x4 head, off the SRNTT output path), plus the frozen VGG19 conv1_1-conv3_1 "
          "555,328. MASA-SR's '5.75 M' agrees with the S-aiueo32/srntt-pytorch port instead (16 "
          "residual blocks at every scale, no BN): 5,746,246.",
)

# ----------------------------------------------------------------------------- key mapping
_LEAF = {"W_conv2d": "weight", "b_conv2d": "bias", "gamma": "weight", "beta": "bias",
         "moving_mean": "running_mean", "moving_variance": "running_var", "w": "weight", "b": "bias"}
_PATHS = {
    "content_extractor": (
        (r"n64s1/c", "conv_in"), (r"n64s1/c1/(\d+)", r"blocks.\1.conv1"), (r"n64s1/b1/(\d+)", r"blocks.\1.bn1"),
        (r"n64s1/c2/(\d+)", r"blocks.\1.conv2"), (r"n64s1/b2/(\d+)", r"blocks.\1.bn2"),
        (r"n64s1/c/m", "conv_mid"), (r"n64s1/b/m", "bn_mid"), (r"n256s1/1", "up1"), (r"n256s1/2", "up2"),
        (r"out", "out")),
    "texture_transfer": (
        (r"(small|medium|large)/conv1", r"\1.conv_in"),
        (r"(small|medium|large)/resblock_(\d+)/(conv1|bn1|conv2|bn2)", r"\1.blocks.\2.\3"),
        (r"(small|medium|large)/conv2", r"\1.conv_mid"), (r"(small|medium|large)/bn2", r"\1.bn_mid"),
        (r"(small|medium|large)/conv3", r"\1.conv_out"), (r"out", "out")),
    "vgg19": ((r"(conv[123]_[12])", r"\1"),),
}
_PREFIX = {"content_extractor": "content_extractor", "texture_transfer": "texture_transfer", "vgg19": "vgg"}


def tf_to_torch_key(name: str) -> str:
    """Official TF variable name -> our state-dict key, e.g.
    ``texture_transfer/small/resblock_3/bn1/moving_variance:0`` -> ``texture_transfer.small.blocks.3.bn1.running_var``.

    Rule: drop ``:0``; split into scope / layer path / leaf; the layer path is rewritten by the
    table ``_PATHS[scope]``, the leaf by ``_LEAF`` (W_conv2d/w -> weight, b_conv2d/b -> bias,
    gamma -> weight, beta -> bias, moving_mean -> running_mean, moving_variance -> running_var);
    scope ``vgg19`` becomes ``vgg``.
    """
    base = name[:-2] if name.endswith(":0") else name
    scope, _, rest = base.partition("/")
    path, _, leaf = rest.rpartition("/")
    for pattern, repl in _PATHS.get(scope, ()):
        if re.fullmatch(pattern, path) and leaf in _LEAF:
            return f"{_PREFIX[scope]}.{re.sub(pattern, repl, path)}.{_LEAF[leaf]}"
    raise KeyError(f"not an SRNTT variable name: {name!r}")


def official_variable_names(role: str, num_res_blocks: int = 16) -> list[str]:
    """TF variable names of one official sub-network in creation order (= TensorLayer ``all_params``
    order, which is the order of the arrays in the official ``.npz`` files)."""
    bn = ("beta", "gamma", "moving_mean", "moving_variance")
    conv, conv_b = ("W_conv2d",), ("W_conv2d", "b_conv2d")
    layers: list[tuple[str, tuple[str, ...]]] = []
    if role == "content_extractor":
        layers.append(("n64s1/c", conv_b))
        for i in range(16):
            layers += [(f"n64s1/c1/{i}", conv), (f"n64s1/b1/{i}", bn), (f"n64s1/c2/{i}", conv), (f"n64s1/b2/{i}", bn)]
        layers += [("n64s1/c/m", conv), ("n64s1/b/m", bn), ("n256s1/1", conv_b), ("n256s1/2", conv_b), ("out", conv_b)]
    elif role == "texture_transfer":
        for scale, n in (("small", num_res_blocks), ("medium", num_res_blocks // 2), ("large", num_res_blocks // 4)):
            layers.append((f"{scale}/conv1", conv_b))
            for i in range(n):
                layers += [(f"{scale}/resblock_{i}/conv1", conv), (f"{scale}/resblock_{i}/bn1", bn),
                           (f"{scale}/resblock_{i}/conv2", conv), (f"{scale}/resblock_{i}/bn2", bn)]
            layers += [(f"{scale}/conv2", conv), (f"{scale}/bn2", bn), (f"{scale}/conv3", conv_b)]
        layers.append(("out", conv_b))
    elif role == "vgg19":
        layers = [(c, ("w", "b")) for c in ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")]
    else:
        raise KeyError(f"unknown SRNTT role {role!r}")
    return [f"{role}/{path}/{leaf}:0" for path, leaves in layers for leaf in leaves]


def tf_to_torch_layout(array: np.ndarray) -> torch.Tensor:
    """TF conv kernels are (h, w, in, out); torch wants (out, in, h, w). Vectors stay as they are."""
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return t.permute(3, 2, 0, 1).contiguous() if t.ndim == 4 else t


# ----------------------------------------------------------------------------- official files
def read_tensorlayer_npz(path: str | Path) -> list[np.ndarray]:
    """The array list of a TensorLayer ``save_npz`` file (``np.savez(name, params=[...])``).

    The list is stored as a pickled object array; it is rebuilt with an unpickler that only
    allows numpy arrays, never arbitrary objects.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            if "params.npy" not in zf.namelist():
                raise CheckpointError(f"{path}: not a TensorLayer save_npz file (no 'params' array)")
            data = zf.read("params.npy")
        fp = io.BytesIO(data)
        version = np.lib.format.read_magic(fp)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(fp)
        if not dtype.hasobject:  # all arrays had one shape: stored as one plain array
            return list(np.lib.format.read_array(io.BytesIO(data), allow_pickle=False))
        arrays = NumpyOnlyUnpickler(fp, encoding="latin1").load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, ValueError, EOFError) as exc:
        raise CheckpointError(f"{path}: cannot read as a TensorLayer .npz: {exc}") from exc
    return [np.asarray(a) for a in np.asarray(arrays, dtype=object).reshape(-1)]


def write_tensorlayer_npz(file, arrays: list[np.ndarray]) -> None:
    """What TensorLayer's ``save_npz`` writes: ``np.savez(file, params=[...])``, one object array
    holding the variables in ``all_params`` order (TF layout), pickled as NumPy 1.x's ``np.save`` does
    (protocol 3, ``numpy.core.multiarray``), so the authors' TensorFlow code loads it too.
    ``file``: a path or an open binary file."""
    params = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        params[i] = np.ascontiguousarray(a)
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, np.lib.format.header_data_from_array_1_0(params))
    # protocol 3 names globals as text lines (no frames), so the module can be renamed in place
    npy.write(pickle.dumps(params, protocol=3).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    with zipfile.ZipFile(file, "w") as zf:
        zf.writestr("params.npy", npy.getvalue())


def torch_to_tf_layout(t: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`tf_to_torch_layout`: conv kernels (out, in, h, w) -> (h, w, in, out)."""
    t = t.detach().cpu().float()
    return np.ascontiguousarray((t.permute(2, 3, 1, 0) if t.ndim == 4 else t).numpy())


def write_matconvnet_vgg19(file, sd: dict[str, torch.Tensor]) -> None:
    """The convolutions of ``sd`` (keys ``conv1_1.weight`` …, in VGG19 order) as a MatConvNet ``layers``
    cell array that :func:`matconvnet_vgg19_state_dict` reads (kernels (x, y, in, out), biases
    (out, 1)); for SRNTT's exported files and for stand-ins in tests, never in place of the authors' file."""
    from scipy.io import savemat

    names = [c for c in VGG19_CONVS if f"{c}.weight" in sd]
    cells = np.empty((1, len(names)), dtype=object)
    for i, name in enumerate(names):
        weights = np.empty((1, 2), dtype=object)
        weights[0, 0] = sd[f"{name}.weight"].detach().cpu().float().permute(3, 2, 1, 0).contiguous().numpy()
        weights[0, 1] = sd[f"{name}.bias"].detach().cpu().float().reshape(-1, 1).numpy()
        cells[0, i] = {"name": name, "type": "conv", "weights": weights}
    savemat(file, {"layers": cells})


def npz_state_dict(path: str | Path, role: str, num_res_blocks: int = 16) -> dict[str, torch.Tensor]:
    """An official ``.npz`` as a state dict with official TF names (torch layout)."""
    arrays = read_tensorlayer_npz(path)
    names = official_variable_names(role, num_res_blocks)
    if len(arrays) != len(names):
        raise CheckpointError(f"{path} holds {len(arrays)} arrays; the official {role} has {len(names)} "
                              f"variables (num_res_blocks={num_res_blocks}); is it the right file?")
    return {n: tf_to_torch_layout(a) for n, a in zip(names, arrays)}


#: the 16 convolutions of VGG19 in order (MatConvNet layer names)
VGG19_CONVS = tuple(f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)) for i in range(1, n + 1))


def matconvnet_vgg19_state_dict(path: str | Path, upto: str = "conv3_1") -> dict[str, torch.Tensor]:
    """conv1_1 … ``upto`` (SRNTT's network: conv3_1) of MatConvNet's ``imagenet-vgg-verydeep-19.mat``
    under official TF names (``vgg19/conv4_1/w:0`` for layers beyond the model's, as the official
    perceptual loss reads them up to relu5_1).

    MatConvNet kernels are indexed (x, y, in, out) as the official code reads them (it transposes
    to (y, x, in, out)); here they go straight to torch's (out, in, y, x).
    """
    from scipy.io import loadmat  # MAT v5 parser: data only, no code execution

    wanted = VGG19_CONVS[:VGG19_CONVS.index(upto) + 1]
    try:
        cells = loadmat(str(path))["layers"][0]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise CheckpointError(f"{path}: not MatConvNet's {MATCONVNET_VGG19}: {exc!r}") from exc
    sd = {}
    for cell in cells:
        layer = cell[0, 0]
        name = str(np.asarray(layer["name"]).reshape(-1)[0])
        if name in wanted:
            kernel, bias = np.asarray(layer["weights"]).reshape(-1)[:2]
            sd[f"vgg19/{name}/w:0"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 1, 0), np.float32))
            sd[f"vgg19/{name}/b:0"] = torch.from_numpy(np.asarray(bias, np.float32).reshape(-1))
    missing = [n for n in wanted if f"vgg19/{n}/w:0" not in sd]
    if missing:
        raise CheckpointError(f"{path}: no layers {missing}; expected MatConvNet's {MATCONVNET_VGG19}")
    return sd


_TORCHVISION_INDEX = {"conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7, "conv3_1": 10}


def torchvision_vgg19_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """conv1_1 … conv3_1 of torchvision's VGG19 file (``features.N.*`` or ``N.*`` keys), our keys."""
    sd = read_state_dict(path)
    out = {}
    for name, idx in _TORCHVISION_INDEX.items():
        for leaf in ("weight", "bias"):
            key = next((k for k in (f"features.{idx}.{leaf}", f"{idx}.{leaf}") if k in sd), None)
            if key is None:
                raise CheckpointError(f"{path}: no features.{idx}.{leaf}; expected torchvision's VGG19 file")
            out[f"vgg.{name}.{leaf}"] = sd[key]
    return out


# ----------------------------------------------------------------------------- network
def depth_to_space(x: torch.Tensor, r: int) -> torch.Tensor:
    """``tf.depth_to_space``: input channel (i*r + j)*C + c goes to pixel (i, j) of channel c.

    (PyTorch's ``pixel_shuffle`` orders channels c*r*r + i*r + j, so it would scramble official
    weights.) Done in NHWC, as TensorFlow does; the result is a channels-last NCHW tensor.
    """
    b, c, h, w = x.shape
    y = x.permute(0, 2, 3, 1).reshape(b, h, w, r, r, c // (r * r)).permute(0, 1, 3, 2, 4, 5)
    return y.reshape(b, h * r, w * r, c // (r * r)).permute(0, 3, 1, 2)


class BatchNorm(nn.Module):
    """TensorLayer's BatchNormLayer (eps 1e-5, decay 0.9): weight=gamma, bias=beta, running stats.

    Not ``nn.BatchNorm2d``: that one adds a ``num_batches_tracked`` buffer, which the official
    checkpoints do not have.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, momentum=0.1, eps=1e-5)


def _conv(cin: int, cout: int, k: int = 3, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class ResBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus identity (convs without bias, as ``b_init=None`` officially)."""

    def __init__(self, ch: int = 64):
        super().__init__()
        self.conv1, self.bn1 = _conv(ch, ch, bias=False), BatchNorm(ch)
        self.conv2, self.bn2 = _conv(ch, ch, bias=False), BatchNorm(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))


class ContentExtractor(nn.Module):
    """Scope ``content_extractor``: SRGAN-style trunk; its ×4 head gives the official 'Upscale' image."""

    def __init__(self, ch: int = 64, n_blocks: int = 16):
        super().__init__()
        self.conv_in = _conv(3, ch)
        self.blocks = nn.Sequential(*[ResBlock(ch) for _ in range(n_blocks)])
        self.conv_mid, self.bn_mid = _conv(ch, ch, bias=False), BatchNorm(ch)
        self.up1, self.up2 = _conv(ch, 4 * ch), _conv(ch, 4 * ch)
        self.out = _conv(ch, 3, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """LR in [-1, 1] -> content feature (B, 64, h, w)."""
        skip = F.relu(self.conv_in(x))
        return self.bn_mid(self.conv_mid(self.blocks(skip))) + skip

    def upscale(self, content: torch.Tensor) -> torch.Tensor:
        """Content feature -> the content extractor's own ×4 SR in [-1, 1]."""
        x = F.relu(depth_to_space(self.up1(content), 2))
        x = F.relu(depth_to_space(self.up2(x), 2))
        return torch.tanh(self.out(x))


class TextureScale(nn.Module):
    """One scale of ``texture_transfer``: concat(content, swapped map) -> residual fusion -> ×2 (or 32 ch)."""

    def __init__(self, map_ch: int, n_blocks: int, last: bool, ch: int = 64):
        super().__init__()
        self.conv_in = _conv(ch + map_ch, ch)
        self.blocks = nn.Sequential(*[ResBlock(ch) for _ in range(n_blocks)])
        self.conv_mid, self.bn_mid = _conv(ch, ch, bias=False), BatchNorm(ch)
        self.conv_out = _conv(ch, ch // 2 if last else 4 * ch)
        self.last = last

    def forward(self, x: torch.Tensor, swapped: torch.Tensor) -> torch.Tensor:
        h = self.blocks(F.relu(self.conv_in(torch.cat([x, swapped], 1))))
        h = self.bn_mid(self.conv_mid(h)) + x
        return self.conv_out(h) if self.last else F.relu(depth_to_space(self.conv_out(h), 2))


class TextureTransfer(nn.Module):
    """Scope ``texture_transfer``: small (relu3_1), medium (relu2_1), large (relu1_1) scales."""

    def __init__(self, n_blocks: int = 16):
        super().__init__()
        self.small = TextureScale(256, n_blocks, last=False)
        self.medium = TextureScale(128, n_blocks // 2, last=False)
        self.large = TextureScale(64, n_blocks // 4, last=True)
        self.out = _conv(32, 3, k=1)

    def forward(self, content: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        x = self.large(self.medium(self.small(content, maps[0]), maps[1]), maps[2])
        return torch.tanh(self.out(x))


class VGG19Features(nn.Module):
    """VGG19 conv1_1 … conv3_1 giving relu1_1, relu2_1, relu3_1 of an RGB image in [0, 1].

    Input normalisation depends on the weights: MatConvNet (official) takes 0–255 minus the mean
    pixel; torchvision takes ImageNet mean/std on [0, 1]. It is fixed at construction.
    """

    NORMALISATION = {"matconvnet": ((123.68, 116.779, 103.939), (1.0, 1.0, 1.0)),
                     "torchvision": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))}

    def __init__(self, weights: str = "matconvnet"):
        super().__init__()
        mean, std = self.NORMALISATION[weights]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        for name, (cin, cout) in {"conv1_1": (3, 64), "conv1_2": (64, 64), "conv2_1": (64, 128),
                                  "conv2_2": (128, 128), "conv3_1": (128, 256)}.items():
            self.add_module(name, _conv(cin, cout))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (x * 255 - self.mean) / self.std
        relu1_1 = F.relu(self.conv1_1(x))
        x = F.max_pool2d(F.relu(self.conv1_2(relu1_1)), 2, ceil_mode=True)  # TF 'SAME' pooling
        relu2_1 = F.relu(self.conv2_1(x))
        x = F.max_pool2d(F.relu(self.conv2_2(relu2_1)), 2, ceil_mode=True)
        return {"relu1_1": relu1_1, "relu2_1": relu2_1, "relu3_1": F.relu(self.conv3_1(x))}


# ----------------------------------------------------------------------------- matching, swapping
def match_patches(content: torch.Tensor, condition: torch.Tensor, chunk_bytes: int = 1 << 28) -> torch.Tensor:
    """For every 3×3 patch of ``content`` (C,h,w), the index of the best 3×3 patch of ``condition``
    (C,H,W), row-major over its (H-2)×(W-2) grid: the largest correlation with the L2-normalised
    condition patch (``swap.py``, which convolves with every normalised patch as a kernel).

    Same scores, 9× fewer multiply-adds: one pixel-to-pixel correlation per band of content rows is
    shared by the nine patch offsets (summed along shifted diagonals). Bands are sized so that about
    ``chunk_bytes`` of scores are held (in three reused buffers); argmax keeps the earliest index on
    ties, as the official loop does.
    """
    c, h, w = content.shape
    _, hr, wr = condition.shape
    ho, wo, gh, gw = h - 2, w - 2, hr - 2, wr - 2
    norm = F.unfold(condition.pow(2).sum(0)[None, None], 3).sum(1).sqrt().view(gh, gw)
    inv_norm = 1.0 / norm.clamp_min(1e-12)
    cond_flat = condition.reshape(c, hr * wr)
    rows = min(ho, max(1, chunk_bytes // (3 * 4 * w * hr * wr) - 2))
    corr_buf = content.new_empty((rows + 2) * w, hr * wr)
    sx_buf = content.new_empty(rows + 2, wo, hr, gw)
    score_buf = content.new_empty(rows, wo, gh, gw)
    out = torch.empty(ho, wo, dtype=torch.long, device=content.device)
    for r0 in range(0, ho, rows):
        n = min(ho, r0 + rows) - r0
        corr = torch.mm(content[:, r0:r0 + n + 2].reshape(c, -1).t(), cond_flat,
                        out=corr_buf[:(n + 2) * w]).view(n + 2, w, hr, wr)
        sx = torch.add(corr[:, 0:wo, :, 0:gw], corr[:, 1:wo + 1, :, 1:gw + 1], out=sx_buf[:n + 2])
        sx += corr[:, 2:wo + 2, :, 2:gw + 2]
        score = torch.add(sx[0:n, :, 0:gh], sx[1:n + 1, :, 1:gh + 1], out=score_buf[:n])
        score += sx[2:n + 2, :, 2:gh + 2]
        score *= inv_norm
        out[r0:r0 + n] = score.view(n, wo, gh * gw).argmax(-1)
    return out


def swap_features(idx: torch.Tensor, style: torch.Tensor, ratio: int, chunk_bytes: int = 1 << 28) -> torch.Tensor:
    """Stitch the reference patches chosen by ``idx`` from ``style`` (C, ratio*H, ratio*W), where
    (H, W) is the matched relu3_1 grid; patches are 3*ratio wide at stride ``ratio``, overlaps averaged.

    Every patch is 3×3 blocks of ratio×ratio pixels, so the stitching is nine shifted block gathers.
    """
    c = style.shape[0]
    gh, gw = style.shape[1] // ratio, style.shape[2] // ratio
    blocks = style.view(c, gh, ratio, gw, ratio).permute(1, 3, 0, 2, 4).reshape(gh * gw, -1)
    ph, pw = idx.shape
    pi, pj = idx // (gw - 2), idx % (gw - 2)
    out = style.new_zeros(ph + 2, pw + 2, blocks.shape[1])
    count = style.new_zeros(ph + 2, pw + 2, 1)
    band = max(1, chunk_bytes // (4 * pw * blocks.shape[1]))
    for di in range(3):  # offsets outermost: every output pixel sums in the same order, chunked or not
        for dj in range(3):
            for a in range(0, ph, band):
                b = min(ph, a + band)
                out[a + di:b + di, dj:dj + pw] += blocks[(pi[a:b] + di) * gw + pj[a:b] + dj]
                count[a + di:b + di, dj:dj + pw] += 1
    out = out / count
    return out.view(ph + 2, pw + 2, c, ratio, ratio).permute(2, 0, 3, 1, 4).reshape(c, (ph + 2) * ratio, (pw + 2) * ratio)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """Channels-last memory: TensorFlow's layout, and the faster one for CPU convolutions here."""
    return x.contiguous(memory_format=torch.channels_last)


def _uint8(x: torch.Tensor) -> torch.Tensor:
    """The official pipeline only sees 8-bit images."""
    return (x.clamp(0, 1) * 255).round() / 255


# ----------------------------------------------------------------------------- model
class SRNTT(RefSRModel):
    """forward(lr, ref) -> sr, RGB in [0, 1]; official preprocessing, matching and swapping inside."""

    def __init__(self, num_res_blocks: int = 16, vgg: str = "matconvnet", match_chunk_bytes: int = 1 << 28):
        super().__init__()
        self.num_res_blocks = num_res_blocks
        self.content_extractor = ContentExtractor()
        self.texture_transfer = TextureTransfer(num_res_blocks)
        self.vgg = VGG19Features(vgg)
        self.vgg_weights = vgg
        self.match_chunk_bytes = match_chunk_bytes

    def swapped_maps(self, lr: torch.Tensor, ref: torch.Tensor) -> list[torch.Tensor]:
        """The relu3_1, relu2_1, relu1_1 swapped reference features for 8-bit ``lr``, ``ref`` (ref ×4-cropped)."""
        h, w = lr.shape[-2:]
        rh, rw = ref.shape[-2:]
        lr_up = pil_bicubic_tensor(lr, (4 * h, 4 * w))
        ref_du = pil_bicubic_tensor(pil_bicubic_tensor(ref, (rh // 4, rw // 4)), (rh, rw))
        content = self.vgg(_nhwc(lr_up))["relu3_1"].contiguous()
        condition = self.vgg(_nhwc(ref_du))["relu3_1"].contiguous()
        styles = {k: v.contiguous() for k, v in self.vgg(_nhwc(ref)).items()}
        maps: list[list[torch.Tensor]] = [[], [], []]
        for b in range(lr.shape[0]):
            idx = match_patches(content[b], condition[b], self.match_chunk_bytes)
            for level, (name, ratio) in enumerate((("relu3_1", 1), ("relu2_1", 2), ("relu1_1", 4))):
                maps[level].append(swap_features(idx, styles[name][b], ratio, self.match_chunk_bytes))
        return [_nhwc(torch.stack(m)) for m in maps]

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.forward_with_maps(lr, ref)[0]

    def forward_with_maps(self, lr: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(sr in [0, 1], the swapped maps M_3, M_2, M_1 it was made with); the maps carry no gradient
        (the VGG19 is never trained; the texture loss compares the output's VGG features with them)."""
        rh, rw = ref.shape[-2] // 4 * 4, ref.shape[-1] // 4 * 4
        if min(rh, rw) < 12 or min(lr.shape[-2:]) < 3:
            raise ValueError(f"srntt needs an LR of at least 3x3 and a reference of at least 12x12, got "
                             f"{tuple(lr.shape[-2:])} and {tuple(ref.shape[-2:])}")
        lr, ref = _uint8(lr), _uint8(ref[..., :rh, :rw])
        with torch.no_grad():
            maps = self.swapped_maps(lr, ref)
        sr = self.texture_transfer(self.content_extractor(_nhwc(lr * 2 - 1)), maps)
        return (sr + 1) / 2, maps

    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        """The official 'Upscale' image: the content extractor's own ×4 SR (no reference), in [0, 1]."""
        return (self.content_extractor.upscale(self.content_extractor(_nhwc(_uint8(lr) * 2 - 1))) + 1) / 2

    # -- official checkpoints ---------------------------------------------------------------------
    def checkpoint_modules(self) -> dict[str, nn.Module]:
        return {role: getattr(self, attr) for role, attr in _PREFIX.items()}

    def read_checkpoint(self, role: str, path) -> dict[str, torch.Tensor]:
        """``upscale.npz`` / ``srntt[_init].npz`` (TensorLayer arrays, read without pickle code) and the
        MatConvNet ``.mat`` VGG19 (torchvision's ``.pth`` with ``vgg='torchvision'``); any role may
        also be a torch state dict with TF variable names or our keys."""
        path = Path(path)
        suffix = path.suffix.lower()
        if role == "vgg19" and suffix == ".mat":
            if self.vgg_weights != "matconvnet":
                raise CheckpointError("a MatConvNet VGG19 needs SRNTT(vgg='matconvnet')")
            return matconvnet_vgg19_state_dict(path)
        if role == "vgg19" and self.vgg_weights == "torchvision":
            return torchvision_vgg19_state_dict(path)
        if suffix == ".npz":
            return npz_state_dict(path, role, self.num_res_blocks)
        return read_state_dict(path)

    def write_checkpoint(self, role: str, path, wrapper: str | None = None) -> None:
        """The official file of ``role`` from the current weights (what :meth:`read_checkpoint` reads):
        ``upscale.npz`` / ``srntt[_init].npz`` as TensorLayer's ``save_npz`` writes them (the official
        trainer's ``files.save_npz(net_srntt.all_params)``: every variable of the scope, BN moving
        statistics included, in creation order, TF layout); ``vgg19`` as a MatConvNet ``.mat``
        (torchvision's layout with ``vgg='torchvision'``)."""
        if wrapper:
            raise ValueError("SRNTT's official files have no wrapper key")
        sd = self.checkpoint_modules()[role].state_dict()
        with open(path, "wb") as f:
            if role == "vgg19" and self.vgg_weights == "torchvision":
                torch.save({f"features.{i}.{leaf}": sd[f"{name}.{leaf}"].detach().cpu().clone()
                            for name, i in _TORCHVISION_INDEX.items() for leaf in ("weight", "bias")}, f)
            elif role == "vgg19":
                write_matconvnet_vgg19(f, sd)
            else:
                prefix = _PREFIX[role] + "."
                names = official_variable_names(role, self.num_res_blocks)
                write_tensorlayer_npz(f, [torch_to_tf_layout(sd[tf_to_torch_key(n)[len(prefix):]]) for n in names])

    def checkpoint_filter(self, role: str, state_dict: dict) -> dict:
        """TF variable names (or our full keys) -> keys of the role's sub-module."""
        prefix = _PREFIX[role] + "."
        out = {}
        for key, value in state_dict.items():
            full = tf_to_torch_key(key) if "/" in key else key
            if not full.startswith(prefix):
                raise CheckpointError(f"key {key!r} does not belong to {role}")
            out[full[len(prefix):]] = value
        return out


@register_model(SPEC)
def srntt(**kwargs) -> SRNTT:
    return SRNTT(**kwargs)
