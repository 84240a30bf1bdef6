"""The one registry implementation: models, metrics, variants, importers and recipes all use it.

A registry maps names to entries (a factory or a class plus metadata). Entries register
themselves with ``@REGISTRY.register(name, **info)`` in the module that defines them, and the
registry imports every module of its package on first use (``discover``): a file whose name
starts with ``_`` is infrastructure and is not imported by discovery. Every registry speaks the
same verbs: ``list(pattern)``, ``get(name)``, ``info(name)``, ``create(name, **kwargs)``.
Registering a name twice from different modules is an error; an unknown name gets close-name
suggestions.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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

    def __init__(self, kind: str, package: str | None = None):
        self.kind = kind
        self.package = package
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        self._discovered = package is None

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
    def discover(self) -> None:
        """Import every module of the package whose name does not start with ``_`` (once)."""
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{self.package}.{mod.name}")

    def list(self, pattern: str | None = None) -> list[str]:
        """Registered names, sorted; ``pattern`` filters with shell wildcards (``"ttsr*"``)."""
        self.discover()
        names = sorted(self._entries)
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names

    def target(self, name: str) -> str:
        """What an alias points to (``name`` itself when it is not an alias)."""
        self.discover()
        return self._aliases.get(name, name)

    def canonical(self, name: str) -> str:
        """``name`` itself, or what an alias points to; unknown names raise :class:`UnknownName`."""
        self.discover()
        name = self._aliases.get(name, name)
        if name not in self._entries:
            close = difflib.get_close_matches(name, [*self._entries, *self._aliases], n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownName(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.list())})")
        return name

    def entry(self, name: str) -> Entry:
        return self._entries[self.canonical(name)]

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
        self.discover()
        return self._aliases.get(name, name) in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[n] for n in self.list())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"
