"""Evaluation protocols: every choice that changes a published number, explicit, named and hashed.

A :class:`Protocol` fixes how the HR is sized (mod-crop or centre pad), which kernel makes the LR,
how the SR is quantised (clamp, round), the Y conversion, the border crop, metric options (SSIM
variant) and how the reference is prepared. Presets live as data in ``benchmark/protocols/*.yaml``
(``refsr-standard`` is the default); users declare their own YAML, either complete or as
``base: <preset>`` plus the sections they change. ``Protocol.hash`` is a SHA-256 of the canonical
JSON of the parameters (name and description excluded), so two protocols with equal hashes score
identically whatever they are called.

Harness use::

    p = load_protocol("refsr-standard")
    hr_eval, lr = p.make_pair(hr_uint8, scale)
    ref_in = p.prepare_ref(ref_uint8, scale)   # or a list of references where the preset stacks them
    sr_q = p.quantise(sr)                 # (H, W, 3) or (B, H, W, 3) in [0, 1] -> float64 0..255
    values = p.score(sr_q, hr_eval, metrics=["psnr_y", "ssim_y", "psnr_rgb"], scale=scale)

The border crop defines the scored region for every metric (LPIPS and no-reference ones too).
Under ``masa`` the SR of the padded input is cropped back to the original HR and scored there,
as MASA-SR's ``Trainer.test`` does; ``hr.score_region: padded`` scores the padded image instead.

``scale`` (default 4, the RefSR scale) matters where a policy says ``scale`` (mod-crop multiple,
border crop). A metric that cannot run here (no pyiqa, no weights) raises ``MetricUnavailable``;
``benchmark.metrics.availability(names)`` gives the reasons up front.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from . import metrics as metric_registry
from core.resize import imresize, pil_bicubic
from core.yaml_io import load_yaml

PRESET_DIR = Path(__file__).parent / "protocols"
DEFAULT_PROTOCOL = "refsr-standard"
DEFAULT_METRICS = ("psnr_y", "ssim_y", "psnr_rgb")
SCALE = "scale"
_LR_KERNELS = ("pil-bicubic", "matlab-bicubic", "dataset")
_PAD_MODES = {"replicate": "edge", "zero": "constant"}


class ProtocolError(ValueError):
    """A protocol that cannot be loaded or is invalid; the message names the file and field."""


@dataclass(frozen=True)
class HRPolicy:
    size: str            # "mod-crop": crop top-left to a multiple; "pad": pad around the centre
    multiple: int | str  # the multiple, or "scale" for the SR scale
    pad_mode: str        # "replicate" or "zero" (used by size = "pad")
    score_region: str    # size = "pad": score the "original" region (SR cropped back) or the "padded" one


@dataclass(frozen=True)
class LRPolicy:
    kernel: str          # "pil-bicubic", "matlab-bicubic" (antialiased imresize), or "dataset":
                         # the dataset's own LR files (manifest column ``lr``), used as they are


@dataclass(frozen=True)
class OutputPolicy:
    clamp: bool          # clamp the SR to [0, 1] before scaling to 0..255
    round: bool          # round to integers (half to even, as numpy/torch) after scaling


@dataclass(frozen=True)
class YPolicy:
    weights: tuple[float, float, float]  # Y = (wR R + wG G + wB B) / divisor + offset, RGB on 0..255
    divisor: float
    offset: float


@dataclass(frozen=True)
class ScorePolicy:
    border_crop: int | str                       # pixels dropped on every side, or "scale"
    metric_options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]  # metric -> its keyword options

    def options_for(self, metric: str) -> dict[str, Any]:
        return dict(dict(self.metric_options).get(metric, ()))


@dataclass(frozen=True)
class ReferencePolicy:
    mod_crop: int | str | None  # crop the reference top-left to this multiple ("scale" allowed)
    pad_multiple: int | None    # replicate-pad the reference bottom/right to this multiple
    stack: str                  # several references: "none" (refused); "vertical": a list the caller gives
                                # is stacked; "group-vertical": the harness also gives, for the baseline
                                # variant, the rest of the sample's group in level order (MASA's test)
    stack_canvas: int           # stacking: each reference is centre-padded to canvas x canvas first


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    hr: HRPolicy
    lr: LRPolicy
    output: OutputPolicy
    y: YPolicy
    score_policy: ScorePolicy
    reference: ReferencePolicy

    # ---------------------------------------------------------------- identity
    def as_dict(self) -> dict[str, Any]:
        """Plain nested dict in the YAML layout (loadable by :func:`protocol_from_dict`)."""
        score = {"border_crop": self.score_policy.border_crop,
                 "metric_options": {m: dict(o) for m, o in self.score_policy.metric_options}}
        return {"name": self.name, "description": self.description, "hr": asdict(self.hr),
                "lr": asdict(self.lr), "output": asdict(self.output),
                "y": {**asdict(self.y), "weights": list(self.y.weights)}, "score": score,
                "reference": asdict(self.reference)}

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical JSON of the parameters (name and description excluded)."""
        params = {k: v for k, v in self.as_dict().items() if k not in ("name", "description")}
        canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.as_dict(), sort_keys=False)

    @property
    def scoring_key(self) -> tuple:
        """What decides the score of a given SR against a given ``hr_eval``: protocols with equal keys
        (e.g. ones that differ only in the LR kernel) give equal values when re-scoring one output."""
        return (self.hr, self.output, self.y, self.score_policy)

    def border(self, scale: int) -> int:
        b = self.score_policy.border_crop
        return scale if b == SCALE else int(b)

    # ---------------------------------------------------------------- inputs
    def make_pair(self, hr: np.ndarray, scale: int, given_lr: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """``(hr_eval, lr)``: the HR as it will be scored and the uint8 LR input of the model.

        Under ``lr.kernel: dataset`` the LR is ``given_lr`` (the dataset's file), which must be
        exactly the prepared HR's size divided by the scale; other kernels ignore it."""
        _check_image(hr, "hr")
        _check_scale(scale)
        multiple = scale if self.hr.multiple == SCALE else int(self.hr.multiple)
        h, w = hr.shape[:2]
        if multiple % scale:
            raise ValueError(f"protocol {self.name}: hr.multiple {multiple} is not a multiple of the "
                             f"scale {scale}, so the LR size would not be exact")
        if self.hr.size == "mod-crop":
            hh, ww = h - h % multiple, w - w % multiple
            if hh == 0 or ww == 0:
                raise ValueError(f"image {h}x{w} is smaller than the mod-crop multiple {multiple}")
            source = hr_eval = np.ascontiguousarray(hr[:hh, :ww])
        else:
            source = _pad_centre(hr, multiple, self.hr.pad_mode)
            hr_eval = source if self.hr.score_region == "padded" else np.ascontiguousarray(hr)
        lh, lw = source.shape[0] // scale, source.shape[1] // scale
        if self.lr.kernel == "dataset":
            if given_lr is None:
                raise ValueError(f"protocol {self.name} takes the dataset's LR files (lr.kernel: dataset), "
                                 "but this sample has none (manifest column 'lr')")
            _check_image(given_lr, "lr")
            if given_lr.shape[:2] != (lh, lw):
                raise ValueError(f"protocol {self.name}: the dataset's LR is {given_lr.shape[1]}x{given_lr.shape[0]}"
                                 f" but the HR as scored ({source.shape[1]}x{source.shape[0]}) needs "
                                 f"{lw}x{lh} at x{scale}")
            return hr_eval, np.ascontiguousarray(given_lr)
        if self.lr.kernel == "pil-bicubic":
            lr = pil_bicubic(source, (lh, lw))
        else:
            lr = imresize(source, size=(lh, lw))
        return hr_eval, lr

    def prepare_ref(self, ref: np.ndarray | Sequence[np.ndarray], scale: int = 4) -> np.ndarray:
        """The reference as the model receives it (uint8 ``(H, W, 3)``); a list is stacked if allowed."""
        policy = self.reference
        if isinstance(ref, np.ndarray):
            _check_image(ref, "ref")
        else:
            refs = list(ref)
            for i, r in enumerate(refs):
                _check_image(r, f"ref[{i}]")
            if policy.stack == "none":
                raise ValueError(f"protocol {self.name} takes one reference (reference.stack: none); "
                                 f"got {len(refs)}")
            canvas = policy.stack_canvas
            too_big = [r.shape[:2] for r in refs if r.shape[0] > canvas or r.shape[1] > canvas]
            if too_big:
                raise ValueError(f"protocol {self.name}: references {too_big} exceed the "
                                 f"{canvas}x{canvas} stacking canvas")
            ref = np.concatenate([_pad_to(r, canvas, canvas, "replicate", centre=True) for r in refs], axis=0)
        if policy.mod_crop is not None:
            m = scale if policy.mod_crop == SCALE else int(policy.mod_crop)
            h, w = ref.shape[:2]
            if h < m or w < m:
                raise ValueError(f"reference {h}x{w} is smaller than the mod-crop multiple {m}")
            ref = ref[: h - h % m, : w - w % m]
        if policy.pad_multiple is not None:
            m = policy.pad_multiple
            ref = _pad_to(ref, math.ceil(ref.shape[0] / m) * m, math.ceil(ref.shape[1] / m) * m,
                          "replicate", centre=False)
        return np.ascontiguousarray(ref)

    # ---------------------------------------------------------------- outputs
    def quantise(self, sr):
        """SR in [0, 1] (numpy or torch, channels last) -> float64 on 0..255 per clamp/round policy."""
        if isinstance(sr, torch.Tensor):
            x = sr.detach().to(torch.float64)
            if self.output.clamp:
                x = x.clamp(0.0, 1.0)
            x = x * 255.0
            return x.round() if self.output.round else x
        x = np.asarray(sr, dtype=np.float64)
        if self.output.clamp:
            x = np.clip(x, 0.0, 1.0)
        x = x * 255.0
        return np.round(x) if self.output.round else x

    def align(self, sr_q, hr_eval):
        """Crop a padded SR back to ``hr_eval`` (size = "pad", score_region = "original")."""
        sr_hw, hr_hw = tuple(sr_q.shape[-3:-1]), tuple(hr_eval.shape[-3:-1])
        if sr_hw == hr_hw:
            return sr_q
        if self.hr.size == "pad" and self.hr.score_region == "original":
            top, left, ph, pw = _centre_pad_geometry(*hr_hw, int(self.hr.multiple))
            if sr_hw == (ph, pw):
                return sr_q[..., top:top + hr_hw[0], left:left + hr_hw[1], :]
        raise ValueError(f"protocol {self.name}: SR {sr_hw[0]}x{sr_hw[1]} does not match the HR "
                         f"{hr_hw[0]}x{hr_hw[1]} it is scored against")

    def score(self, sr_q, hr_eval, metrics: Sequence[str] = DEFAULT_METRICS,
              device: str | torch.device | None = None, scale: int = 4) -> dict[str, float]:
        """Metric values for one image: ``sr_q`` from :meth:`quantise`, ``hr_eval`` from :meth:`make_pair`."""
        if sr_q.ndim != 3:
            raise ValueError(f"score takes one (H, W, 3) image; use score_batch for {tuple(sr_q.shape)}")
        batch = self.score_batch(sr_q[None], hr_eval[None], metrics, device, scale)
        return {name: float(v[0]) for name, v in batch.items()}

    def score_batch(self, sr_q, hr_eval, metrics: Sequence[str] = DEFAULT_METRICS,
                    device: str | torch.device | None = None, scale: int = 4) -> dict[str, np.ndarray]:
        """Metric values ``(B,)`` for same-sized ``(B, H, W, 3)`` batches, computed on ``device``.

        Raises :class:`benchmark.metrics.MetricUnavailable` for a metric that cannot run here
        (check first with :func:`benchmark.metrics.availability`).
        """
        sr_q = self.align(sr_q, hr_eval)
        sr = _to_bchw(sr_q, device)
        hr = _to_bchw(hr_eval, sr.device)
        if sr.shape != hr.shape:
            raise ValueError(f"SR {tuple(sr.shape)} and HR {tuple(hr.shape)} differ in shape")
        b = self.border(scale)
        if b:
            if sr.shape[2] <= 2 * b or sr.shape[3] <= 2 * b:
                raise ValueError(f"image {sr.shape[2]}x{sr.shape[3]} is too small for a border crop of {b}")
            sr, hr = sr[:, :, b:-b, b:-b], hr[:, :, b:-b, b:-b]
        views = {"rgb": (sr, hr), "y": (self.to_y(sr), self.to_y(hr))}
        out = {}
        for name in metrics:
            metric = metric_registry.get_metric(name, sr.device, **self.score_policy.options_for(name))
            s, h = views[metric.space]
            out[name] = metric(s, h if metric.needs_reference else None).numpy()
        return out

    def to_y(self, rgb: torch.Tensor) -> torch.Tensor:
        """Luma of ``(B, 3, H, W)`` RGB on 0..255, float64, not rounded: ``(B, 1, H, W)``."""
        w = torch.tensor(self.y.weights, dtype=torch.float64, device=rgb.device).view(1, 3, 1, 1)
        return (rgb.double() * w).sum(dim=1, keepdim=True) / self.y.divisor + self.y.offset


# -------------------------------------------------------------------- image helpers
def _check_image(img, label: str) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        desc = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"{label} must be a uint8 (H, W, 3) RGB array, got {desc}")


def _check_scale(scale) -> None:
    if not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")


def _centre_pad_geometry(h: int, w: int, multiple: int) -> tuple[int, int, int, int]:
    """``(top, left, padded_h, padded_w)``; the odd pixel goes to the bottom/right (as MASA-SR)."""
    ph, pw = math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple
    return (ph - h) // 2, (pw - w) // 2, ph, pw


def _pad_centre(img: np.ndarray, multiple: int, mode: str) -> np.ndarray:
    _, _, ph, pw = _centre_pad_geometry(*img.shape[:2], multiple)
    return _pad_to(img, ph, pw, mode, centre=True)


def _pad_to(img: np.ndarray, height: int, width: int, mode: str, centre: bool) -> np.ndarray:
    dh, dw = height - img.shape[0], width - img.shape[1]
    top, left = (dh // 2, dw // 2) if centre else (0, 0)
    pads = ((top, dh - top), (left, dw - left), (0, 0))
    return np.pad(img, pads, mode=_PAD_MODES[mode])


def _to_bchw(x, device) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.tensor(np.asarray(x))
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected (B, H, W, 3) images, got shape {tuple(t.shape)}")
    dev = torch.device(device) if device is not None else (
        t.device if t.device.type != "cpu" else metric_registry.default_device())
    return t.to(dev, torch.float64).permute(0, 3, 1, 2)


# -------------------------------------------------------------------- loading and validation
_SECTIONS = {
    "hr": ("size", "multiple", "pad_mode", "score_region"),
    "lr": ("kernel",),
    "output": ("clamp", "round"),
    "y": ("weights", "divisor", "offset"),
    "score": ("border_crop", "metric_options"),
    "reference": ("mod_crop", "pad_multiple", "stack", "stack_canvas"),
}
_TOP = ("name", "description", "base", *_SECTIONS)


def list_protocols() -> list[str]:
    """Names of the built-in presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_protocol(name_or_path: str | os.PathLike | Protocol = DEFAULT_PROTOCOL) -> Protocol:
    """A preset by name, or a user protocol from a YAML file."""
    if isinstance(name_or_path, Protocol):
        return name_or_path
    text = str(name_or_path)
    if text in list_protocols():
        return _load_file(PRESET_DIR / f"{text}.yaml")
    path = Path(text).expanduser()
    if path.is_file():
        return _load_file(path)
    raise ProtocolError(f"unknown protocol {text!r}: not a preset ({', '.join(list_protocols())}) "
                        f"and not a YAML file")


def _load_file(path: Path) -> Protocol:
    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProtocolError(f"{path}:{where} not valid YAML: {getattr(err, 'problem', err)}") from None
    return protocol_from_dict(data, source=str(path))


def protocol_from_dict(data: Any, source: str = "<dict>") -> Protocol:
    """Validate a nested dict (YAML layout) into a :class:`Protocol`; errors name the field."""
    if not isinstance(data, dict):
        raise ProtocolError(f"{source}: a protocol is a mapping of sections, got {type(data).__name__}")
    _no_unknown(data, _TOP, source, "")
    if "base" in data:
        base_name = data["base"]
        if base_name not in list_protocols():
            raise ProtocolError(f"{source}: base: {base_name!r} is not a preset ({', '.join(list_protocols())})")
        merged = load_protocol(base_name).as_dict()
        for key, value in data.items():
            if key in _SECTIONS:
                if not isinstance(value, dict):
                    raise ProtocolError(f"{source}: {key}: expected a mapping, got {type(value).__name__}")
                merged[key] = {**merged[key], **value}
            elif key != "base":
                merged[key] = value
        if "description" not in data:
            merged["description"] = f"{base_name} with changes: {', '.join(k for k in data if k in _SECTIONS)}"
        data = merged
    f = _Fields(data, source)
    name = f.text("name")
    multiple = f.multiple("hr", "multiple")
    hr = HRPolicy(size=f.choice("hr", "size", ("mod-crop", "pad")), multiple=multiple,
                  pad_mode=f.choice("hr", "pad_mode", tuple(_PAD_MODES)),
                  score_region=f.choice("hr", "score_region", ("original", "padded")))
    if hr.size == "pad" and hr.multiple == SCALE:
        raise ProtocolError(f"{source}: hr.multiple: give a number with size: pad (the padded size "
                            f"must not depend on the scale)")
    y_weights = f.get("y", "weights")
    if not (isinstance(y_weights, list) and len(y_weights) == 3 and all(_is_number(v) for v in y_weights)):
        raise ProtocolError(f"{source}: y.weights: expected three numbers [R, G, B], got {y_weights!r}")
    border = f.get("score", "border_crop")
    if not (border == SCALE or (isinstance(border, int) and not isinstance(border, bool) and border >= 0)):
        raise ProtocolError(f"{source}: score.border_crop: expected a non-negative integer or 'scale', "
                            f"got {border!r}")
    mod_crop = f.get("reference", "mod_crop")
    if not (mod_crop is None or mod_crop == SCALE or _is_positive_int(mod_crop)):
        raise ProtocolError(f"{source}: reference.mod_crop: expected null, 'scale' or a positive integer, "
                            f"got {mod_crop!r}")
    pad_multiple = f.get("reference", "pad_multiple")
    if not (pad_multiple is None or _is_positive_int(pad_multiple)):
        raise ProtocolError(f"{source}: reference.pad_multiple: expected null or a positive integer, "
                            f"got {pad_multiple!r}")
    canvas = f.get("reference", "stack_canvas")
    if not _is_positive_int(canvas):
        raise ProtocolError(f"{source}: reference.stack_canvas: expected a positive integer, got {canvas!r}")
    return Protocol(
        name=name,
        description=str(data.get("description", "")).strip(),
        hr=hr,
        lr=LRPolicy(kernel=f.choice("lr", "kernel", _LR_KERNELS)),
        output=OutputPolicy(clamp=f.flag("output", "clamp"), round=f.flag("output", "round")),
        y=YPolicy(weights=tuple(float(v) for v in y_weights), divisor=f.positive("y", "divisor"),
                  offset=f.number("y", "offset")),
        score_policy=ScorePolicy(border_crop=border, metric_options=_metric_options(
            f.get("score", "metric_options"), source)),
        reference=ReferencePolicy(mod_crop=mod_crop, pad_multiple=pad_multiple,
                                  stack=f.choice("reference", "stack", ("none", "vertical", "group-vertical")),
                                  stack_canvas=canvas),
    )


def _metric_options(value: Any, source: str) -> tuple:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ProtocolError(f"{source}: score.metric_options: expected a mapping metric -> options")
    out = []
    for metric, options in sorted(value.items()):
        if metric not in metric_registry.METRICS:
            raise ProtocolError(f"{source}: score.metric_options: unknown metric {metric!r}; "
                                f"choose from {metric_registry.list_metrics()}")
        if not isinstance(options, dict):
            raise ProtocolError(f"{source}: score.metric_options.{metric}: expected a mapping of options")
        accepted = metric_registry.metric_parameters(metric)
        unknown = set(options) - accepted if accepted is not None else set()
        if unknown:
            raise ProtocolError(f"{source}: score.metric_options.{metric}: unknown option(s) "
                                f"{sorted(unknown)}; {metric} accepts {sorted(accepted)}")
        try:
            metric_registry.create_metric(metric, device="cpu", **options)
        except (TypeError, ValueError) as err:
            raise ProtocolError(f"{source}: score.metric_options.{metric}: {err}") from None
        defaults = metric_registry.metric_info(metric).defaults
        out.append((metric, tuple(sorted((k, _canonical(v, defaults.get(k))) for k, v in options.items()))))
    return tuple(out)


def _canonical(value: Any, default: Any) -> Any:
    """An integer given for a float option becomes a float, so `sigma: 2` and `sigma: 2.0` hash alike."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _no_unknown(mapping: dict, allowed: Sequence[str], source: str, prefix: str) -> None:
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        raise ProtocolError(f"{source}: unknown key(s) {', '.join(prefix + str(k) for k in unknown)}; "
                            f"allowed: {', '.join(prefix + a for a in allowed)}")


class _Fields:
    """Typed access to ``section.key`` of a protocol dict with errors that name the field."""

    def __init__(self, data: dict, source: str):
        self.data, self.source = data, source
        for section, keys in _SECTIONS.items():
            value = data.get(section)
            if not isinstance(value, dict):
                raise ProtocolError(f"{source}: missing section {section!r} (or give `base: <preset>`)"
                                    if value is None else
                                    f"{source}: {section}: expected a mapping, got {type(value).__name__}")
            _no_unknown(value, keys, source, f"{section}.")
            missing = [k for k in keys if k not in value]
            if missing:
                raise ProtocolError(f"{source}: missing {', '.join(f'{section}.{k}' for k in missing)}")

    def get(self, section: str, key: str) -> Any:
        return self.data[section][key]

    def _fail(self, section, key, expected) -> ProtocolError:
        return ProtocolError(f"{self.source}: {section}.{key}: expected {expected}, "
                             f"got {self.get(section, key)!r}")

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ProtocolError(f"{self.source}: {key}: expected a non-empty string, got {value!r}")
        return value.strip()

    def choice(self, section, key, options) -> str:
        if self.get(section, key) not in options:
            raise self._fail(section, key, f"one of {list(options)}")
        return self.get(section, key)

    def flag(self, section, key) -> bool:
        if not isinstance(self.get(section, key), bool):
            raise self._fail(section, key, "true or false")
        return self.get(section, key)

    def number(self, section, key) -> float:
        if not _is_number(self.get(section, key)):
            raise self._fail(section, key, "a number")
        return float(self.get(section, key))

    def positive(self, section, key) -> float:
        if self.number(section, key) <= 0:
            raise self._fail(section, key, "a positive number")
        return float(self.get(section, key))

    def multiple(self, section, key) -> int | str:
        value = self.get(section, key)
        if not (value == SCALE or _is_positive_int(value)):
            raise self._fail(section, key, "a positive integer or 'scale'")
        return value
