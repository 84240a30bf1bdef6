"""The one registry implementation: models, metrics, variants, importers and recipes all use it.

A registry maps names to entries (a factory or a class plus metadata). Entries register
themselves with ``@REGISTRY.register(name, **info)`` in the module that defines them, and the
registry imports every module of its package on first use (``discover``): a file whose name
starts with ``_`` is infrastructure and is not imported by discovery. Every registry speaks the
same verbs: ``list(pattern)``, ``get(name)``, ``info(name)``, ``create(name, **kwargs)``.
Registering a name twice from different modules is an error; an unknown name gets close-name
suggestions.

A registry made with ``brief=`` keeps a generated index (``_index.py`` in its package, a Python
literal read with ``ast.literal_eval``, never imported): names, aliases, each entry's module and a
small description (``brief(entry)``). Listing names and ``brief(name)`` then import nothing, and
``get``/``create`` import only the entry's own module, so ``--help`` does not load torch. The index
is used only while it names exactly the package's modules (a new file means full discovery);
``python -m core.registry MODULE:ATTR ...`` rewrites it and a test checks it matches the real
registrations.
"""
from __future__ import annotations

import ast
import difflib
import fnmatch
import importlib
import pkgutil
import pprint
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class UnknownName(KeyError):
    """A name that no entry of a registry has; the message suggests close ones."""

    def __str__(self) -> str:  # KeyError quotes its argument; this message is for people
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    """One registered thing: ``obj`` (factory or class), where it came from, and its metadata."""

    name: str
    obj: Any
    module: str
    info: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Named entries of one kind, discovered from the modules of ``package``."""

    def __init__(self, kind: str, package: str | None = None,
                 brief: Callable[[Entry], dict[str, Any]] | None = None):
        self.kind = kind
        self.package = package
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        self._discovered = package is None
        self._brief = brief  # entry -> literal-only description kept in the index
        self._index: dict[str, Any] | None = None  # read on first use when fresh (see _read_index)
        self._index_read = brief is None

    # -- registering -------------------------------------------------------------------------------
    def register(self, name: str, **info) -> Callable[[Any], Any]:
        """Decorator: register the decorated factory or class under ``name`` with metadata ``info``."""

        def wrap(obj: Any) -> Any:
            self.add(name, obj, **info)
            return obj

        return wrap

    def add(self, name: str, obj: Any, **info) -> None:
        module = getattr(obj, "__module__", "") or ""
        old = self._entries.get(name)
        if old is not None and old.module != module:
            raise ValueError(f"{self.kind} {name!r} registered twice: {old.module} and {module}")
        self._entries[name] = Entry(name, obj, module, dict(info))

    def remove(self, name: str) -> None:
        """Forget ``name`` (for entries registered temporarily, e.g. in tests)."""
        self._entries.pop(name, None)

    def alias(self, old: str, new: str) -> None:
        """Keep ``old`` working as another spelling of ``new`` (e.g. a renamed entry)."""
        self._aliases[old] = new

    # -- finding -----------------------------------------------------------------------------------
    def _modules(self) -> list[str]:
        pkg = importlib.import_module(self.package)
        return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))

    def discover(self) -> None:
        """Import every module of the package whose name does not start with ``_`` (once)."""
        if self._discovered:
            return
        self._discovered = True
        for name in self._modules():
            importlib.import_module(f"{self.package}.{name}")

    def _read_index(self) -> dict[str, Any] | None:
        """The package's index when it lists exactly the package's modules, else None (once)."""
        if not self._index_read:
            self._index_read = True
            path = self.index_path()
            if path.is_file():
                index = ast.literal_eval(path.read_text())
                if index.get("modules") == self._modules():
                    self._index = index
        return self._index

    def _names(self) -> tuple[set[str], dict[str, str]]:
        """Known names and aliases: from the index when fresh (nothing imported), else discovered."""
        index = None if self._discovered else self._read_index()
        if index is None:
            self.discover()
            return set(self._entries), self._aliases
        return set(index["entries"]) | set(self._entries), {**index["aliases"], **self._aliases}

    def list(self, pattern: str | None = None) -> list[str]:
        """Registered names, sorted; ``pattern`` filters with shell wildcards (``"ttsr*"``)."""
        names = sorted(self._names()[0])
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names

    def target(self, name: str) -> str:
        """What an alias points to (``name`` itself when it is not an alias)."""
        return self._names()[1].get(name, name)

    def canonical(self, name: str) -> str:
        """``name`` itself, or what an alias points to; unknown names raise :class:`UnknownName`."""
        names, aliases = self._names()
        name = aliases.get(name, name)
        if name not in names:
            close = difflib.get_close_matches(name, [*names, *aliases], n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownName(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(names))})")
        return name

    def loaded(self, name: str) -> bool:
        """Whether ``name``'s module has been imported (its entry is live, not only indexed)."""
        return name in self._entries

    def entry(self, name: str) -> Entry:
        name = self.canonical(name)
        if name not in self._entries:  # indexed only: import the one module that registers it
            module = self._index["entries"][name]["module"]
            importlib.import_module(module)
            if name not in self._entries:
                raise UnknownName(f"{self.index_path()} says {module} registers {self.kind} {name!r}, but it does "
                                  f"not: the index is out of date (python -m core.registry ...)")
        return self._entries[name]

    def brief(self, name: str) -> dict[str, Any]:
        """The entry's small description (what listings and ``--help`` show) without importing it."""
        name = self.canonical(name)
        if name in self._entries:
            return self._brief(self._entries[name])
        return self._index["entries"][name]["brief"]

    def get(self, name: str) -> Any:
        """The registered factory or class."""
        return self.entry(name).obj

    def info(self, name: str) -> dict[str, Any]:
        """The metadata given at registration."""
        return self.entry(name).info

    def create(self, name: str, **kwargs) -> Any:
        """Call the registered factory (or class) with ``kwargs``."""
        return self.get(name)(**kwargs)

    def __contains__(self, name: str) -> bool:
        names, aliases = self._names()
        return aliases.get(name, name) in names

    def __iter__(self) -> Iterator[Entry]:
        self.discover()
        return iter(self._entries[n] for n in sorted(self._entries))

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"

    # -- the index ---------------------------------------------------------------------------------
    def index_path(self) -> Path:
        return Path(importlib.import_module(self.package).__path__[0]) / "_index.py"

    def build_index(self) -> dict[str, Any]:
        """The index the real registrations give (imports every module)."""
        self.discover()
        return {"modules": self._modules(), "aliases": dict(sorted(self._aliases.items())),
                "entries": {e.name: {"module": e.module, "brief": self._brief(e)} for e in self}}

    def write_index(self) -> None:
        from .files import atomic_write_text

        text = pprint.pformat(self.build_index(), width=110, sort_dicts=True)
        atomic_write_text(self.index_path(), f"# Generated by `python -m core.registry`: the {self.kind} "
                          f"registry's names and briefs, read with ast.literal_eval (never imported).\n{text}\n")


def main(argv: list[str]) -> int:
    """``python -m core.registry PKG.MODULE:ATTR ...``: rewrite the index of each named registry."""
    for item in argv:
        module, _, attr = item.partition(":")
        registry = getattr(importlib.import_module(module), attr)
        registry.write_index()
        print(f"wrote {registry.index_path()} ({len(registry.list())} {registry.kind}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
