"""CLI: import a dataset layout you already have into the suite's dataset format.

    python -m builders.import --layout cufed5|wrsr|sun80|folder|pairs --src DIR --out DIR [--jobs N]

(``import`` is a Python keyword, so this module runs only as ``python -m builders.import``.)
"""
from __future__ import annotations

import argparse
import sys

from builders.importers import import_layout, list_layouts
from builders._cli import at_least, report_or_error


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m builders.import", description=__doc__.split("\n")[0])
    ap.add_argument("--layout", required=True, choices=list_layouts())
    ap.add_argument("--src", required=True, help="the layout's folder (for pairs: the list file or its folder)")
    ap.add_argument("--out", required=True, help="dataset folder to write")
    ap.add_argument("--jobs", type=int, default=1, help="threads for reading and writing images")
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    ap.add_argument("--copy", action="store_true", help="copy images instead of hard-linking them")
    ap.add_argument("--min-size", type=int, default=16, help="skip images whose shorter side is smaller")
    ap.add_argument("--max-refs", type=int, default=0,
                    help="keep at most N references per HR, drawn with --seed (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    return report_or_error(lambda: at_least(args, jobs=1, min_size=1, max_refs=0, seed=0) or
                           import_layout(args.layout, args.src, args.out, jobs=args.jobs,
                                         overwrite=args.overwrite, link=not args.copy,
                                         min_size=args.min_size, max_refs=args.max_refs, seed=args.seed))


if __name__ == "__main__":
    sys.exit(main())
