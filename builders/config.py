"""Recipe configs: frozen dataclasses whose fields are the options, from dicts, to YAML and to a CLI.

A recipe's ``Config`` carries ``name`` and ``version`` as class attributes and one field per option;
``option(default, help, ...)`` attaches the help text (and, where the historic command-line name
differs from the field name, its ``flag``; for fixed sets of values, ``choices``). Nested configs
(``sift``, ``levels``) are fields holding dataclasses. :func:`add_config_options` turns every field
of a set of configs into command-line options, so a new field is a new option with no CLI edit.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Iterable, Iterator


def option(default=dataclasses.MISSING, help: str = "", *, flag: str | None = None, choices=None,
           factory=dataclasses.MISSING):
    """A config field with its command-line help (``flag``: the option name, default ``--field-name``)."""
    meta = {"help": help, "flag": flag, "choices": tuple(choices) if choices is not None else None}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def config_from_dict(cls, data: dict | None, base=None):
    """A (nested) config dataclass from a plain dict over ``base`` (default: ``cls()``); unknown keys refused."""
    base = cls() if base is None else base
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        current = getattr(base, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            value = config_from_dict(type(current), value, current)
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return dataclasses.replace(base, **kwargs)


def as_config(cls, config):
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    return config_from_dict(cls, config)


def to_plain(config) -> dict:
    """Config as YAML-safe plain data (tuples become lists)."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(dataclasses.asdict(config))


# -- command line ----------------------------------------------------------------------------------
@dataclasses.dataclass
class _Opt:
    path: tuple[str, ...]          # ("levels", "n")
    flag: str
    kind: type
    many: bool                     # a tuple field: nargs="+"
    help: str
    choices: tuple | None
    defaults: dict                 # config name -> default


def _leaves(cls, default, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dataclasses.Field, object, type]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(type(value), value, (*prefix, f.name))
        else:
            yield (*prefix, f.name), f, value, hints[f.name]


def _options(configs: Iterable[type]) -> tuple[list[_Opt], dict[str, str]]:
    opts: dict[tuple[str, ...], _Opt] = {}
    sections: dict[str, str] = {}
    for cls in configs:
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(getattr(cls(), f.name)):
                sections.setdefault(f.name, f.metadata.get("help") or f.name)
        for path, f, value, hint in _leaves(cls, cls()):
            many = typing.get_origin(hint) is tuple
            kind = typing.get_args(hint)[0] if many else (type(value) if value is not None else str)
            flag = f.metadata.get("flag") or "--" + path[-1].replace("_", "-")
            opt = opts.setdefault(path, _Opt(path, flag, kind, many, f.metadata.get("help", ""),
                                             f.metadata.get("choices"), {}))
            opt.defaults[cls.name] = list(value) if many else value
    flags: dict[str, tuple] = {}
    for opt in opts.values():
        if flags.setdefault(opt.flag, opt.path) != opt.path:
            raise ValueError(f"config fields {'.'.join(flags[opt.flag])} and {'.'.join(opt.path)} "
                             f"both want the option {opt.flag}; give one a flag")
    return list(opts.values()), sections


def _dest(path: tuple[str, ...]) -> str:
    return "config:" + ".".join(path)


def add_config_options(parser: argparse.ArgumentParser, configs: Iterable[type]) -> None:
    """One option per field of ``configs`` (recipe Config classes), grouped by nested section."""
    configs = list(configs)
    opts, sections = _options(configs)
    groups = {"": parser.add_argument_group("recipe options (Config fields; default: the recipe's)")}
    for opt in opts:
        section = opt.path[0] if len(opt.path) > 1 else ""
        if section not in groups:
            groups[section] = parser.add_argument_group(f"{sections[section]} ({section}.*)")
        shown = {k: (" ".join(map(str, v)) or "none") if opt.many else v for k, v in opt.defaults.items()}
        if len(set(map(repr, shown.values()))) == 1:
            default = f"default {next(iter(shown.values()))}"
        else:
            default = "default " + ", ".join(f"{k} {v}" for k, v in shown.items())
        only = "" if len(opt.defaults) == len(configs) else f"{'/'.join(opt.defaults)} only; "
        kind = float if opt.kind is float else opt.kind
        kwargs = dict(dest=_dest(opt.path), default=None, choices=opt.choices,
                      help=f"{only}{opt.help} ({default})" if opt.help else f"{only}{default}")
        if opt.kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=kind, nargs="+" if opt.many else None)
        if opt.choices is None and opt.kind is not bool:
            kwargs["metavar"] = opt.path[-1].upper()
        groups[section].add_argument(opt.flag, **kwargs)


def given_options(args: argparse.Namespace) -> dict:
    """The config options given on the command line, as a nested dict (``{"levels": {"n": 4}}``)."""
    out: dict = {}
    for dest, value in vars(args).items():
        if not dest.startswith("config:") or value is None:
            continue
        *parents, leaf = dest[len("config:"):].split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out
