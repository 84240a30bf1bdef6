"""What the builders' command lines share: run the work, print its report, or one error line."""
from __future__ import annotations

import sys
from collections.abc import Callable

from .manifest import DatasetError


def report_or_error(work: Callable) -> int:
    """Call ``work()`` (which returns a report); print the report and return 0, or print the error
    (bad input, a missing folder, an unknown name) without a traceback and return 2."""
    try:
        report = work()
    except (DatasetError, KeyError, ValueError, FileNotFoundError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2
    print(report.format())
    return 0


def at_least(args, **minimums: int) -> None:
    """Range-check integer options before any work, e.g. ``at_least(args, jobs=1, seed=0)``: a value
    below its minimum is a ValueError naming the option (printed by :func:`report_or_error`)."""
    for name, low in minimums.items():
        value = getattr(args, name)
        if value is not None and value < low:
            raise ValueError(f"--{name.replace('_', '-')} {value}: must be >= {low}")
