"""No-reference IQA networks (MUSIQ, MANIQA) through the optional ``pyiqa`` package.

``pyiqa`` (PolyForm Noncommercial) is an optional extra (``make iqa``). Its networks are built
with ``pretrained=False`` — and any timm backbone they create with ``pretrained=False`` too — so
nothing is downloaded; the official weights are then read from a local folder with
``torch.load(weights_only=True)`` and loaded strictly into the whole network. The folder is the
``weights_dir`` argument, else ``$REFSR_IQA_WEIGHTS``, else pyiqa's own cache
``$TORCH_HOME/hub/pyiqa``. Without the package or the file the metric is unavailable with a
reason; it never scores with random weights.
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
                           f"put the file there or point ${IQA_WEIGHTS_ENV} at its folder)")
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
