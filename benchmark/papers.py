"""Each model's own paper protocol and published figures (``benchmark/papers.yaml``), validated.

The ``paper`` suite runs every model listed there under its paper protocol as well as under the
suite's common protocol, and its leaderboard puts the published figure beside both (see
:func:`benchmark.leaderboard.paper_table`). Model names, protocols and metrics are checked against
their registries when the file is read, so a typo fails before any work starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from core.yaml_io import load_yaml

PAPERS_FILE = Path(__file__).parent / "papers.yaml"
_FIELDS = {"protocol", "protocol_source", "protocol_note", "published", "published_note"}
_FIGURE_FIELDS = {"psnr_y", "ssim_y", "source"}


@dataclass(frozen=True)
class Published:
    """One published figure set: metric -> value on one dataset, and the table it comes from."""

    dataset: str
    values: tuple[tuple[str, float], ...]
    source: str

    def text(self) -> str:
        figures = " / ".join(f"{m} {v:g}" for m, v in self.values)
        return f"{self.dataset}: {figures} ({self.source})"


@dataclass(frozen=True)
class PaperEntry:
    model: str  # name[.tag]
    protocol: str
    protocol_source: str
    protocol_note: str = ""
    published: tuple[Published, ...] = field(default_factory=tuple)
    published_note: str = ""

    def figure(self, dataset: str) -> Published | None:
        return next((p for p in self.published if p.dataset == dataset), None)


def load_papers(path: str | Path = PAPERS_FILE) -> dict[str, PaperEntry]:
    """``model[.tag]`` -> its :class:`PaperEntry`; errors name the file, the model and the field."""
    return dict(_load(str(path)))


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[tuple[str, PaperEntry], ...]:
    from models.registry import full_name, split_name

    from . import dataset_registry
    from .protocol import load_protocol

    raw = load_yaml(Path(path).read_text()) or {}
    out = []
    for model, entry in raw.items():
        where = f"{path}: {model}"
        try:
            name = full_name(*split_name(model))
        except KeyError as exc:
            raise ValueError(f"{where}: {exc.args[0]}") from None
        if not isinstance(entry, dict) or set(entry) - _FIELDS or "protocol" not in entry:
            raise ValueError(f"{where}: expected a mapping with 'protocol' and only {sorted(_FIELDS)}")
        load_protocol(entry["protocol"])
        figures = []
        for dataset, fig in (entry.get("published") or {}).items():
            dataset_registry.resolve(dataset)
            if not isinstance(fig, dict) or set(fig) - _FIGURE_FIELDS or not fig.get("source"):
                raise ValueError(f"{where}: published.{dataset}: expected {sorted(_FIGURE_FIELDS)} with a source")
            values = tuple((m, float(fig[m])) for m in ("psnr_y", "ssim_y") if m in fig)
            figures.append(Published(dataset, values, str(fig["source"])))
        if not figures and not entry.get("published_note"):
            raise ValueError(f"{where}: no published figure: say why in published_note")
        out.append((name, PaperEntry(name, str(entry["protocol"]), str(entry.get("protocol_source", "")),
                                     " ".join(str(entry.get("protocol_note", "")).split()), tuple(figures),
                                     " ".join(str(entry.get("published_note", "")).split()))))
    return tuple(out)


def paper_protocol(model: str) -> str | None:
    """The paper protocol of ``model[.tag]``, or None when papers.yaml does not list it."""
    entry = load_papers().get(model)
    return entry.protocol if entry else None
