"""Harness overhead: wall time of a suite's evaluation versus the sum of the model forward times in it.

    .venv/bin/python scripts/harness_overhead.py [--suite demo] [--models bicubic,texture_transfer]

Runs the suite from scratch in a temporary run folder (no profiles, no publishing) and prints the
evaluation wall time, the summed forward time and their ratio. Everything that is not a forward
(image decoding, protocol, variants, metrics, result writing) is the overhead.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark import run  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="demo")
    p.add_argument("--models", default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--suite", args.suite, "--out", tmp, "--no-profile", "--no-publish", "--device", "cpu"]
        if args.models:
            argv += ["--models", args.models]
        run.main(argv)
        info = json.loads((Path(tmp) / "run.json").read_text())
    wall, fwd, n = info["eval_wall_s"], info["forward_s_this_session"], info["images_this_session"]
    print(f"suite {args.suite}: {n} model evaluations")
    print(f"evaluation wall time      {wall:8.2f} s")
    print(f"sum of forward times      {fwd:8.2f} s")
    print(f"overhead (wall - forward) {wall - fwd:8.2f} s  ({(wall - fwd) / max(n, 1) * 1000:.1f} ms per evaluation)")
    print(f"ratio wall / forward      {wall / fwd:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
