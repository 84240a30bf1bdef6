"""The build report: what went in, what came out per split and level, what was skipped and why, time.

It is printed by the CLI and saved under ``report`` in the dataset's ``spec.yaml``. Every input
that is not used gets a short reason key, counted; nothing is dropped silently.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class BuildReport:
    recipe: str
    out: str = ""
    albums: int = 0
    images: int = 0
    pairs_scored: int = 0
    pairs_not_verified: int = 0                             # left out by retrieval in large albums
    skipped: Counter = field(default_factory=Counter)       # reason -> count (images, albums, pairs, HRs)
    converted: Counter = field(default_factory=Counter)     # grayscale / alpha / 16-bit -> count
    skipped_inputs: list = field(default_factory=list)      # [{"input": rel path, "reason": key}]
    samples: Counter = field(default_factory=Counter)       # (split, level) -> count
    crops: Counter = field(default_factory=Counter)         # candidates / verified / written
    files: Counter = field(default_factory=Counter)         # written / linked / copied / converted -> count
    level_edges: dict = field(default_factory=dict)         # album -> cut points
    times: dict = field(default_factory=dict)               # stage -> seconds
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def skip(self, reason: str, where: str) -> None:
        """Count an input left out: ``reason`` is a short key, ``where`` names the input."""
        self.skipped[reason] += 1
        self.skipped_inputs.append({"input": str(where), "reason": reason})

    def stage(self, name: str, seconds: float) -> None:
        self.times[name] = round(self.times.get(name, 0.0) + seconds, 3)

    def finish(self) -> "BuildReport":
        self.times["total"] = round(time.perf_counter() - self._t0, 3)
        return self

    def to_dict(self) -> dict:
        per_split: dict = {}
        for (split, level), n in sorted(self.samples.items()):
            per_split.setdefault(split, {})[f"L{level}"] = n
        return {
            "recipe": self.recipe, "albums": self.albums, "images": self.images,
            "pairs_scored": self.pairs_scored, "samples": per_split,
            **({"pairs_not_verified": self.pairs_not_verified} if self.pairs_not_verified else {}),
            "skipped": dict(sorted(self.skipped.items())), "converted": dict(sorted(self.converted.items())),
            "skipped_inputs": sorted(self.skipped_inputs, key=lambda d: (d["input"], d["reason"])),
            "crops": dict(sorted(self.crops.items())), "files": dict(sorted(self.files.items())),
            "level_edges": self.level_edges,
            "seconds": dict(self.times),
        }

    def format(self) -> str:
        d = self.to_dict()
        lines = [f"build report ({self.recipe}) -> {self.out}",
                 f"  inputs: {self.albums} albums, {self.images} images, {self.pairs_scored} pairs scored"
                 + (f" ({self.pairs_not_verified} left out by retrieval)" if self.pairs_not_verified else "")]
        for split, levels in d["samples"].items():
            total = sum(levels.values())
            lines.append(f"  {split}: {total} samples  " + "  ".join(f"{k}={v}" for k, v in levels.items()))
        if not d["samples"]:
            lines.append("  no samples written")
        if d["crops"]:
            lines.append("  crops: " + ", ".join(f"{k}={v}" for k, v in d["crops"].items()))
        if d["files"]:
            lines.append("  files: " + ", ".join(f"{k}={v}" for k, v in d["files"].items()))
        if d["converted"]:
            lines.append("  converted inputs: " + ", ".join(f"{k}={v}" for k, v in d["converted"].items()))
        if d["skipped"]:
            lines.append("  skipped: " + ", ".join(f"{k}={v}" for k, v in d["skipped"].items()))
            named = d["skipped_inputs"]
            more = f", and {len(named) - 10} more (spec.yaml: report.skipped_inputs)" if len(named) > 10 else ""
            lines.append("  skipped inputs: " + ", ".join(f"{x['input']} ({x['reason']})" for x in named[:10]) + more)
        lines.append("  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in d["seconds"].items()))
        return "\n".join(lines)
