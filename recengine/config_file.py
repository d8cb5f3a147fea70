"""Config files for the command line: a TOML (or JSON) file whose keys set a config dataclass's fields.

    # sasrec.toml, for `recengine train sasrec --config sasrec.toml`
    dim = 32
    max_epochs = 20

    # compare.toml, for `recengine compare --config compare.toml`; nested dataclasses are tables
    seeds = 3
    agents = ["random", "popularity", "reinforce"]
    [reinforce]
    lr = 0.005

The loader is generic over the dataclass's fields (resolved type hints): a key that is not a field, or a value of
the wrong type, is a ``ConfigFileError`` naming the key and the file. A nested dataclass field (a table) starts from
the field's own default, so a table only changes the keys it holds. The resolved config is written back as JSON
(``write_resolved_config``), which ``--config`` reads as well: a run's ``config.json`` reproduces its settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from recengine._atomic import write_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, as a package (a dependency on Python 3.10)
    import tomli as tomllib

__all__ = [
    "ConfigFileError",
    "Rule",
    "apply_values",
    "at_least",
    "between",
    "check_fields",
    "one_of",
    "positive",
    "given_options",
    "load_config",
    "read_config_file",
    "to_dict",
    "write_resolved_config",
]

RESOLVED_CONFIG = "config.json"
"""the file name of the resolved config written beside a run's results"""


class ConfigFileError(ValueError):
    """A config file that cannot be read, or that names an unknown key or holds a value of the wrong type.

    ``key`` is the dotted key at fault (``"dqn.gamma"``) when there is one."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def _line_of(path: str, key: str) -> int | None:
    """The line (1-based) where the dotted ``key`` is set in the TOML or JSON file at ``path``, when a plain scan
    finds it (a key inside its ``[table]``, or a JSON ``"name":``); None otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    *tables, name = key.split(".")
    if path.endswith(".json"):
        needle = f'"{name}"'
        return next((n for n, line in enumerate(lines, 1) if needle in line), None)
    table = ""
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if text.startswith("[") and text.endswith("]"):
            table = text.strip("[] ")
            if table == ".".join([*tables, name]):
                return n
        elif table == ".".join(tables) and text.split("=", 1)[0].strip().strip('"') == name and "=" in text:
            return n
    return None


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The table of a ``.toml`` file (``tomllib``) or the object of a ``.json`` file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigFileError(f"{path}: no such config file")
    try:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                values = json.load(f)
        else:
            with open(path, "rb") as f:
                values = tomllib.load(f)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{path}: not a valid config file ({exc})") from None
    if not isinstance(values, dict):
        raise ConfigFileError(f"{path}: the file must hold a table of keys, got {type(values).__name__}")
    return values


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _convert(value: Any, hint: Any, key: str, source: str, current: Any) -> Any:
    """``value`` as the field type ``hint`` wants, or a ConfigFileError naming ``key`` and ``source``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [h for h in typing.get_args(hint) if h is not type(None)]
        if value is None and len(options) < len(typing.get_args(hint)):  # JSON's null for an optional field
            return None
        for option in options:
            try:
                return _convert(value, option, key, source, current)
            except ConfigFileError:
                continue
        raise ConfigFileError(f"{source}: {key} must be {' or '.join(map(_type_name, options))}, got {value!r}", key)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigFileError(f"{source}: {key} must be a table of {hint.__name__} fields, got {value!r}", key)
        base = current if isinstance(current, hint) else hint()
        return apply_values(base, value, source=source, prefix=f"{key}.")
    base_type = origin or hint
    if base_type is bool:
        ok = isinstance(value, bool)
    elif base_type is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base_type is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif base_type is str:
        ok = isinstance(value, str)
    elif base_type in (tuple, list):
        ok = isinstance(value, Sequence) and not isinstance(value, str)
        value = base_type(value) if ok else value
    elif base_type is dict:
        ok = isinstance(value, Mapping)
        value = dict(value) if ok else value
    else:  # a type this loader does not know: accept what the file holds
        ok = True
    if not ok:
        raise ConfigFileError(f"{source}: {key} must be {_type_name(base_type)}, got {value!r}", key)
    return value


def apply_values(config: Any, values: Mapping[str, Any], *, source: str = "<values>", prefix: str = "") -> Any:
    """A copy of the dataclass ``config`` with ``values`` set (checked against its fields' types); the dataclass's
    own checks (``__post_init__``) run on the result and their ValueError is reported against ``source`` (with the
    key's line when ``source`` is the file the values came from)."""
    try:
        return _apply(config, values, source, prefix)
    except ConfigFileError as exc:
        line = _line_of(source, exc.key) if not prefix and exc.key and os.path.isfile(source) else None
        if line is None:
            raise
        raise ConfigFileError(str(exc).replace(f"{source}: ", f"{source}:{line}: ", 1), exc.key) from None


def _apply(config: Any, values: Mapping[str, Any], source: str, prefix: str) -> Any:
    hints = typing.get_type_hints(type(config))
    fields = {f.name for f in dataclasses.fields(config) if f.init}
    changes = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigFileError(
                f"{source}: unknown key {prefix}{key} (a {type(config).__name__} has {', '.join(sorted(fields))})",
                f"{prefix}{key}",
            )
        changes[key] = _convert(value, hints[key], f"{prefix}{key}", source, getattr(config, key))
    try:
        return dataclasses.replace(config, **changes)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigFileError):
            raise
        message = str(exc)
        first = message.split(" ", 1)[0].rstrip(":")  # "dim must be ..." or "dim: must be ..."
        key = f"{prefix}{first}" if first in fields else None
        if prefix and key:  # a field's own check: name it by its table too
            message = prefix + message
        raise ConfigFileError(f"{source}: {message}", key) from None


def load_config(config: Any, path: str | os.PathLike) -> Any:
    """``config`` (a dataclass instance: the defaults) with the values of the file at ``path`` set."""
    return apply_values(config, read_config_file(path), source=os.fspath(path))


def to_dict(config: Any) -> dict[str, Any]:
    """The dataclass ``config`` as plain JSON values (tuples as lists, nested dataclasses as objects)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def write_resolved_config(config: Any, out_dir: str | os.PathLike) -> str:
    """Write ``config`` as ``out_dir/config.json`` (atomically); returns the path."""
    path = os.path.join(os.fspath(out_dir), RESOLVED_CONFIG)
    write_text(path, json.dumps(to_dict(config), indent=2, sort_keys=True) + "\n")
    return path


class Rule(NamedTuple):
    """What a setting may hold: ``ok(value)`` says whether it does, ``says`` what it must be (for the message)."""

    ok: Any
    says: str


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def at_least(low: float) -> Rule:
    """A number >= ``low`` (NaN never is)."""
    return Rule(lambda v: _number(v) and v >= low, f"a number >= {low:g}")


def between(low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> Rule:
    """A number in the interval from ``low`` to ``high``, each end closed unless said open (NaN never is)."""

    def ok(v):
        return _number(v) and (v > low if open_low else v >= low) and (v < high if open_high else v <= high)

    return Rule(ok, f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}")


def positive() -> Rule:
    """A finite number > 0."""
    return Rule(lambda v: _number(v) and 0 < v < float("inf"), "a finite number > 0")


def one_of(*choices: Any) -> Rule:
    """One of ``choices``."""
    return Rule(lambda v: v in choices, f"one of {', '.join(map(repr, choices))}")


def check_fields(config: Any, rules: Mapping[str, Rule]) -> None:
    """Raise ValueError naming the first field of ``config`` whose value breaks its rule: ``<field> must be ...,
    got ...``. Dataclasses call it from ``__post_init__``, so a Python argument, a flag and a config file value
    (``apply_values``, which adds the file and the table) meet the same check with the same words."""
    for name, rule in rules.items():
        value = getattr(config, name)
        if not rule.ok(value):
            raise ValueError(f"{name} must be {rule.says}, got {value!r}")


_UNSET = object()


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.values()


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> set[str]:
    """The destinations of the options given explicitly in ``argv`` (default ``sys.argv[1:]``), so that a config
    file's value yields only to a flag the user typed, not to a flag's default."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parsers = [parser, *_subparsers(parser)]
    saved = [(action, action.default) for p in parsers for action in p._actions]
    saved_defaults = [(p, dict(p._defaults)) for p in parsers]
    try:
        for action, _ in saved:
            action.default = _UNSET
        for p, _ in saved_defaults:
            p._defaults = {key: _UNSET for key in p._defaults}
        namespace = parser.parse_args(argv)
    finally:
        for action, default in saved:
            action.default = default
        for p, defaults in saved_defaults:
            p._defaults = defaults
    return {key for key, value in vars(namespace).items() if value is not _UNSET}
