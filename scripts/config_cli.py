"""Command-line options generated from config dataclasses.

Every field becomes ``--prefix.field-name`` with its type, default and the docstring written under
it as help, so ``--help`` documents every option and any field can be overridden. Nested dataclass
fields recurse (``--agent.learning-rate 3e-4``).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from functools import cache
from typing import Any


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under dataclass fields (``x: int = 1`` then ``\"\"\"doc\"\"\"``), whole MRO."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for a, b in zip(body, body[1:], strict=False):
            if (
                isinstance(a, ast.AnnAssign)
                and isinstance(a.target, ast.Name)
                and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant)
                and isinstance(b.value.value, str)
            ):
                docs[a.target.id] = " ".join(b.value.value.split())
    return docs


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _converter(tp: Any):
    """(type for argparse, nargs) for a field's annotation."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        conv, nargs = _converter(inner[0])
        return (lambda s: None if s.lower() == "none" else conv(s)), nargs
    if origin is typing.Literal:
        return str, None
    if origin in (tuple, list):
        elem = args[0] if args else str
        return _converter(elem)[0], "+"
    if tp is bool:
        return _parse_bool, None
    if tp in (int, float, str):
        return tp, None
    if origin is dict:
        return None, None  # not settable from the command line
    return str, None


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str, skip: set[str] = frozenset()) -> None:
    """Add one option per field of dataclass ``cls`` (recursing into nested dataclasses)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    group = parser.add_argument_group(f"{prefix or cls.__name__} ({cls.__name__})")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp = hints[f.name]
        dest = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(tp):
            add_dataclass_args(parser, tp, dest)
            continue
        conv, nargs = _converter(tp)
        if conv is None:
            continue
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        choices = list(typing.get_args(tp)) if typing.get_origin(tp) is typing.Literal else None
        flag = "--" + dest.replace("_", "-")
        group.add_argument(
            flag,
            dest=dest,
            type=conv,
            nargs=nargs,
            choices=choices,
            default=argparse.SUPPRESS,
            help=f"{docs.get(f.name, '')} (default: {default})",
        )


def overrides_for(ns: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """Options given on the command line under ``prefix`` as a nested dict."""
    out: dict[str, Any] = {}
    for key, value in vars(ns).items():
        if prefix and not key.startswith(prefix + "."):
            continue
        path = key[len(prefix) + 1 :].split(".") if prefix else key.split(".")
        d = out
        for p in path[:-1]:
            d = d.setdefault(p, {})
        d[path[-1]] = tuple(value) if isinstance(value, list) else value
    return out


def apply_overrides(obj: Any, overrides: dict[str, Any]) -> Any:
    """``dataclasses.replace`` recursively with a nested dict of overrides."""
    flat = {}
    for k, v in overrides.items():
        if isinstance(v, dict) and dataclasses.is_dataclass(getattr(obj, k, None)):
            flat[k] = apply_overrides(getattr(obj, k), v)
        else:
            flat[k] = v
    return dataclasses.replace(obj, **flat)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a (nested) config dataclass from ``dataclasses.asdict`` output (as saved in JSON)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        v, tp = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(v, dict):
            v = from_dict(tp, v)
        elif typing.get_origin(tp) is tuple and isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)
