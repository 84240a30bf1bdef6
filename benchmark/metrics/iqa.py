"""No-reference IQA networks (MUSIQ, MANIQA) through the optional ``pyiqa`` package.

``pyiqa`` (PolyForm Noncommercial) is an optional extra (``make iqa``). Its networks are built
with ``pretrained=False`` — and any timm backbone they create with ``pretrained=False`` too — so
nothing is downloaded; the official weights are then read from a local folder with
``torch.load(weights_only=True)`` and loaded strictly into the whole network. The folder is the
``weights_dir`` argument, else ``$REFSR_IQA_WEIGHTS``, else pyiqa's own cache
``$TORCH_HOME/hub/pyiqa``. Without the package or the file the metric is unavailable with a
reason; it never scores with random weights.

``python -m benchmark.run --download --metrics musiq,maniqa`` (or :func:`fetch_iqa_weights`) fetches
the files pyiqa publishes (its ``default_model_urls``) into that folder, on request only: the
network is built on the meta device, the file's keys and shapes must match it exactly before it is
moved into place, and its sha256 and source URL are recorded in ``official_sha256.json`` there.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import torch

from models.checkpoint import CheckpointError, load_into, read_state_dict

from ._base import Metric, register_metric

IQA_WEIGHTS_ENV = "REFSR_IQA_WEIGHTS"
RECORD = "official_sha256.json"

#: metric -> (pyiqa name, file, where pyiqa publishes it: ``default_model_urls`` of
#: pyiqa/archs/musiq_arch.py ['koniq10k'] and pyiqa/archs/maniqa_arch.py ['koniq'])
IQA_FILES = {
    "musiq": ("musiq", "musiq_koniq_ckpt-e95806b9.pth",
              "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_koniq_ckpt-e95806b9.pth"),
    "maniqa": ("maniqa", "ckpt_koniq10k.pt",
               "https://github.com/IIGROUP/MANIQA/releases/download/Koniq10k/ckpt_koniq10k.pt"),
}


def iqa_weights_dir(folder: str | os.PathLike | None = None) -> Path:
    """The folder holding pyiqa weight files (argument > ``$REFSR_IQA_WEIGHTS`` > torch hub cache)."""
    if folder is not None:
        return Path(folder).expanduser()
    if os.environ.get(IQA_WEIGHTS_ENV):
        return Path(os.environ[IQA_WEIGHTS_ENV]).expanduser()
    return Path(torch.hub.get_dir()) / "pyiqa"


@contextlib.contextmanager
def _no_pretrained_backbones():
    """Make ``timm.create_model`` build random backbones: their weights come from our checkpoint."""
    if importlib.util.find_spec("timm") is None:
        yield
        return
    import timm

    real = timm.create_model

    def offline(*args, **kwargs):
        kwargs["pretrained"] = False
        return real(*args, **kwargs)

    timm.create_model = offline
    try:
        yield
    finally:
        timm.create_model = real


@lru_cache(maxsize=8)
def _build(pyiqa_name: str, weights: Path, device: str, options: tuple) -> torch.nn.Module:
    pyiqa = importlib.import_module("pyiqa")
    with _no_pretrained_backbones():
        model = pyiqa.create_metric(pyiqa_name, device=torch.device(device), pretrained=False,
                                    pretrained_model_path=None, **dict(options))
    load_into(model.net, read_state_dict(weights))
    model.eval()
    return model


def recorded_iqa_hashes(folder: str | os.PathLike | None = None) -> dict:
    """``{metric: {"net": {"sha256", "file", "source", "recorded"}}}`` from the IQA weights folder."""
    import json

    try:
        return json.loads((iqa_weights_dir(folder) / RECORD).read_text())
    except (OSError, ValueError):
        return {}


def _meta_net(pyiqa_name: str) -> torch.nn.Module:
    """The metric's network with no storage (meta device): only its keys and shapes are needed."""
    pyiqa = importlib.import_module("pyiqa")
    meta = torch.device("meta")
    with meta, _no_pretrained_backbones():
        return pyiqa.create_metric(pyiqa_name, device=meta, pretrained=False, pretrained_model_path=None).net


def fetch_iqa_weights(name: str, folder: str | os.PathLike | None = None, *, force: bool = False,
                      timeout: float = 60.0, progress: bool = True, log=print) -> Path:
    """Fetch the weight file of ``musiq``/``maniqa`` into the IQA weights folder (on request only):
    download (resumable), check keys and shapes against pyiqa's network, move into place, record."""
    import time

    from core.download import DownloadError, download, install_checked
    from core.files import atomic_write_json, locked
    from models.checkpoint import describe_mismatch

    if name not in IQA_FILES:
        raise KeyError(f"no downloadable weights for metric {name!r}; known: {', '.join(IQA_FILES)}")
    pyiqa_name, filename, url = IQA_FILES[name]
    dest = iqa_weights_dir(folder) / filename
    if dest.is_file() and not force:
        log(f"{name}: {filename} already present at {dest}")
        return dest
    if importlib.util.find_spec("pyiqa") is None:
        raise CheckpointError(f"{name}: pyiqa is not installed, so {filename} cannot be checked (and the metric "
                              f"cannot run): `make iqa` installs the optional extra; or download it by hand "
                              f"from {url} into {dest.parent}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with locked(dest.parent / f".{dest.name}.lock"):
        log(f"{name}: downloading {filename} from {url}")
        try:
            part = download(url, dest, timeout=timeout, progress=progress)
        except DownloadError as exc:
            raise CheckpointError(f"{name}: {exc}") from None

        def check(path, digest):
            stem_hash = filename.rsplit("-", 1)[-1].split(".")[0] if "-" in filename else ""
            if len(stem_hash) == 8 and not digest.startswith(stem_hash):
                log(f"{name}: note: sha256 {digest[:8]}… differs from the hash prefix in the file name ({stem_hash})")
            diff = describe_mismatch(_meta_net(pyiqa_name).state_dict(), read_state_dict(path))
            if diff:
                raise CheckpointError(f"{filename} from {url} does not fit pyiqa's {pyiqa_name} network; "
                                      f"not installed:\n{diff}")

        digest = install_checked(part, dest, check)
    record = recorded_iqa_hashes(folder)
    record[name] = {"net": {"sha256": digest, "file": filename, "source": url,
                            "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}}
    atomic_write_json(dest.parent / RECORD, record)
    log(f"{name}: {filename} verified and installed at {dest} (sha256 {digest})")
    return dest


class PyiqaMetric(Metric):
    """A pyiqa no-reference metric with weights from a local file."""

    space = "rgb"
    needs_reference = False

    def __init__(self, name: str, pyiqa_name: str, weights_file: str,
                 weights_dir: str | os.PathLike | None = None, device=None, **options):
        super().__init__(name, device)
        self.pyiqa_name = pyiqa_name
        self.weights = iqa_weights_dir(weights_dir) / weights_file
        self.options = tuple(sorted(options.items()))

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("pyiqa") is None:
            return False, "unavailable (pyiqa not installed; `make iqa` installs the optional extra)"
        if not self.weights.is_file():
            return False, (f"unavailable (weights {self.weights.name} not found in {self.weights.parent}; "
                           f"put the file there or point ${IQA_WEIGHTS_ENV} at its folder; "
                           f"`python -m benchmark.run --download --metrics {self.name} --dry-run` fetches it)")
        try:
            self._model()
        except (ImportError, CheckpointError, RuntimeError, KeyError) as err:
            return False, f"unavailable ({type(err).__name__}: {str(err).splitlines()[0]})"
        return True, ""

    def _model(self) -> torch.nn.Module:
        return _build(self.pyiqa_name, self.weights, str(self.device), self.options)

    def compute(self, sr, hr):
        return self._model()(sr.float() / 255.0).reshape(-1)


register_metric("musiq", PyiqaMetric, {"pyiqa_name": "musiq", "weights_file": "musiq_koniq_ckpt-e95806b9.pth"},
                label="MUSIQ", needs_reference=False, decimals=2,
                summary="MUSIQ trained on KonIQ-10k, no-reference, via optional pyiqa", order=60)
register_metric("maniqa", PyiqaMetric, {"pyiqa_name": "maniqa", "weights_file": "ckpt_koniq10k.pt"},
                label="MANIQA", needs_reference=False, decimals=4,
                summary="MANIQA trained on KonIQ-10k, no-reference, via optional pyiqa", order=70)
