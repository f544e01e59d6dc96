"""The ``--rand`` shorthand of the command line: drop, add or change randomization terms.

Every field of an existing term is also an ordinary option (``--env.randomization.obs_noise.range
-0.02 0.02``); ``--rand`` is what remains for changing the set of terms::

    worldloop train Franka-Lift-v0 --rand obs_noise=off --rand cube_size.kind=geom_size \\
        --rand cube_size.targets=cube --rand cube_size.range=0.9,1.1
    worldloop play --run RUN --rand @runs/.../sim2real/fitted_randomization.json

    items, argv = pop_rand_options(argv)            # before the rest of argv is parsed
    cfg.randomization = apply_rand_options(cfg.randomization, items)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from worldloop.envs.randomization import RandTerm
from worldloop.envs.randomization.terms import coerce
from worldloop.policies.run_dir import ConfigError

RAND_HELP = (
    "change the task's randomization preset, repeatable: 'obs_noise.range=-0.02,0.02', "
    "'cube_friction.op=abs', 'NAME=off' drops a term, 'new.kind=body_mass' (with new.targets, "
    "new.range) adds one. Fields: kind, range, targets, mode, dist, op, components, shared, "
    "interval_s, max_range (see worldloop/envs/randomization/__init__.py); '@FILE.json' adds or replaces "
    "the terms of a preset file (e.g. worldloop sim2real's fitted_randomization.json)"
)
"""Help text of ``--rand NAME.FIELD=VALUE``."""


def pop_rand_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split ``argv`` into the values of every ``--rand X`` / ``--rand=X`` (in order) and the other
    arguments; arguments after a bare ``--`` are left as they are.

    Raises:
        ConfigError: a ``--rand`` without a value."""
    items, rest = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg == "--rand":
            if i + 1 >= len(argv):
                raise ConfigError("--rand needs a value: NAME.FIELD=VALUE or NAME=off")
            items.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--rand="):
            items.append(arg.removeprefix("--rand="))
        else:
            rest.append(arg)
        i += 1
    return items, rest


def apply_rand_options(terms: Mapping[str, RandTerm | Mapping], items: list[str]) -> dict[str, RandTerm]:
    """Apply ``--rand`` options to a preset: ``NAME.FIELD=VALUE`` sets a field (tuples comma-separated:
    ``range=0.5,2``), ``NAME=off`` drops a term, ``NAME.kind=...`` on a new name adds one.

    Raises:
        ConfigError: a malformed option, an unknown field or term (the message names the allowed ones), or a
            term the options leave invalid."""
    try:
        return _apply(terms, items)
    except ValueError as e:  # the checks below and a term's own validation (coerce, RandTerm)
        raise ConfigError(str(e)) from None


def _read_preset_file(path: str) -> dict[str, RandTerm]:
    """The terms of a JSON preset file, ``{name: {RandTerm field: value}}`` (what ``worldloop sim2real``
    writes as ``fitted_randomization.json``)."""
    import json
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--rand @{path}: no such preset file")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"--rand @{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"--rand @{path}: expected an object of terms, {{name: {{kind, range, ...}}}}")
    out = {}
    for name, fields in data.items():
        try:
            out[name] = coerce(name, fields)
        except (TypeError, ValueError) as e:
            raise ValueError(f"--rand @{path}: term {name!r}: {e}") from None
    return out


def _apply(terms: Mapping[str, RandTerm | Mapping], items: list[str]) -> dict[str, RandTerm]:
    out = {name: coerce(name, t) for name, t in terms.items()}
    new: dict[str, dict[str, Any]] = {}
    kinds = {f.name: f.type for f in dataclasses.fields(RandTerm)}
    for item in items:
        if item.startswith("@"):  # a preset file: its terms replace those of the same name or are added
            out.update(_read_preset_file(item[1:]))
            continue
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--rand {item!r}: expected NAME.FIELD=VALUE or NAME=off")
        name, _, fname = key.partition(".")
        if not fname:
            if raw.lower() not in ("off", "none"):
                raise ValueError(f"--rand {item!r}: expected NAME.FIELD=VALUE or NAME=off")
            if name not in out:
                raise ValueError(f"--rand {item!r}: no term {name!r} to drop; terms: {list(out)}")
            del out[name]
            continue
        if fname not in kinds:
            raise ValueError(f"--rand {item!r}: RandTerm has no field {fname!r}; allowed: {list(kinds)}")
        tp = str(kinds[fname])
        value: Any
        if raw.lower() == "none":
            value = None
        elif "tuple" in tp:
            try:
                value = tuple((int if fname == "components" else float)(x) for x in raw.split(",") if x.strip())
            except ValueError:
                raise ValueError(
                    f"--rand {item!r}: {fname} takes comma-separated numbers, e.g. {fname}=0.5,2"
                ) from None
            if fname in ("range", "max_range", "interval_s") and len(value) != 2:
                raise ValueError(f"--rand {item!r}: {fname} takes two numbers LOW,HIGH, e.g. {fname}=0.5,2")
        elif tp == "bool":
            value = raw.lower() in ("1", "true", "yes", "on")
        else:
            value = raw
        if name in out:
            out[name] = dataclasses.replace(out[name], **{fname: value})
        else:
            new.setdefault(name, {})[fname] = value
    for name, fields in new.items():
        if "kind" not in fields or "range" not in fields:
            raise ValueError(f"--rand: new term {name!r} needs at least {name}.kind=... and {name}.range=LOW,HIGH; "
                             f"existing terms: {list(out)}")  # fmt: skip
        out[name] = RandTerm(**fields)
    return out
