"""YAML reading through libyaml's C parser when PyYAML has it (about 10x faster than the pure-Python
one; suites, protocols and dataset specs are read on every run), else the pure-Python safe loader."""
from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(stream: Any) -> Any:
    """``yaml.safe_load`` semantics (plain data only, no Python objects), faster."""
    return yaml.load(stream, Loader=_LOADER)  # noqa: S506 - a safe loader
