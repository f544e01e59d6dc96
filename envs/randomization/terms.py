"""Randomization terms: the :class:`RandTerm` config, the table of kinds, checking a term, and drawing it.

A :class:`Term` is a :class:`RandTerm` resolved against a scene (by :mod:`.model`, :mod:`.state` or
:mod:`.signals`, by what it acts on); :func:`sample` draws it from the randomizer's generator.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import mujoco
import torch

MODES = ("startup", "reset", "interval", "step")
DISTS = ("uniform", "log_uniform", "gaussian")
CURRICULUM_SUCCESS = 0.8
"""Mean success rate above which curriculum ranges widen."""
CURRICULUM_STEP = 0.1
"""Fraction of the way from ``range`` to ``max_range`` added per widening."""
CURRICULUM_WINDOW = 5
"""Success reports averaged (and waited for after each widening)."""


@dataclass(kw_only=True)
class RandTerm:
    """One randomized quantity; the kinds, modes and ops are listed in the package docstring."""

    kind: str
    """What is randomized: ``body_mass``, ``geom_friction``, ``push``, ``obs_noise``, ... (package docstring)."""
    range: tuple[float, float]
    """(low, high) of every draw: a factor for ``op="scale"``, else in the kind's units."""
    targets: str | None = None
    """Regex (full match) over the MuJoCo names of the kind's targets, e.g. ``"cube"``, ``"joint[1-7]"``;
    obs kinds: obs groups (default ``policy``); kinds without targets: leave ``None``."""
    mode: str | None = None
    """When draws are made: ``startup``, ``reset``, ``interval`` or ``step``; ``None``: the kind's default."""
    dist: str = "uniform"
    """``uniform``, ``log_uniform`` (low > 0) or ``gaussian`` (std = width / 4, clipped to the range)."""
    op: str | None = None
    """``scale`` (nominal * draw), ``add`` (nominal + draw) or ``abs`` (draw); ``None``: the kind's default."""
    components: tuple[int, ...] | None = None
    """Components of each target, e.g. ``(0,)`` sliding friction, ``(0, 1)`` x/y; ``None``: the kind's default."""
    shared: bool = False
    """One draw per env for all targets (e.g. the same friction on both finger pads) instead of one each."""
    interval_s: tuple[float, float] = (2.0, 4.0)
    """[s] ``mode="interval"``: each env waits a time drawn uniformly from this range between applications."""
    max_range: tuple[float, float] | None = None
    """Curriculum: the widest range; ``range`` widens toward it as the success rate rises (``None``: fixed)."""


@dataclass(frozen=True)
class Kind:
    """What a kind acts on and what a term of it may choose."""

    group: str  # model | pose | push | obs | action | latency
    elements: str | None  # body | geom | joint | actuator | free_or_joint | free | obs | None
    field: str | None = None  # the MjModel field of a model kind
    stride: int = 1  # values per element in the field (3 for xyz, 10 for actuator parameters)
    col: int = 0  # first of them the kind acts on
    ncomp: int = 1  # components a term may select
    uniform: bool = False  # one draw scales every component of a target
    ops: tuple[str, ...] = ("scale", "add", "abs")
    modes: tuple[str, ...] = ("startup", "reset", "interval")
    mode: str = "reset"
    components: tuple[int, ...] | None = None  # default selection (None: all)
    names: tuple[str, ...] = ()  # component labels


XYZ = ("x", "y", "z")
_ONCE = ("startup", "reset")
_HELD = ("startup", "reset", "interval", "step")
_NOISE = ("add", "scale")
KINDS: dict[str, Kind] = {
    "body_mass": Kind("model", "body", "body_mass"),
    "body_com": Kind("model", "body", "body_ipos", 3, ncomp=3, ops=("add", "abs"), modes=_ONCE, names=XYZ),
    "body_inertia": Kind("model", "body", "body_inertia", 3, ncomp=3, uniform=True, ops=("scale",)),
    "geom_friction": Kind(
        "model", "geom", "geom_friction", 3, ncomp=3, components=(0,), names=("slide", "torsion", "roll")
    ),  # fmt: skip
    "geom_size": Kind("model", "geom", "geom_size", 3, ncomp=3, uniform=True, ops=("scale", "add"), modes=_ONCE),
    "dof_damping": Kind("model", "joint", "dof_damping"),
    "dof_armature": Kind("model", "joint", "dof_armature"),
    "dof_frictionloss": Kind("model", "joint", "dof_frictionloss"),
    "actuator_stiffness": Kind("model", "actuator", "actuator_gainprm", 10, col=0),
    "actuator_damping": Kind("model", "actuator", "actuator_biasprm", 10, col=2),
    "gravity": Kind("model", None, "opt.gravity", 3, ncomp=3, ops=("add", "scale", "abs"), names=XYZ),
    "initial_pose": Kind("pose", "free_or_joint", ops=("add",), modes=("reset",)),
    "push": Kind("push", "free_or_joint", ops=("add",), modes=("reset", "interval"), mode="interval"),
    "impulse": Kind(
        "push",
        "free",
        ncomp=3,
        ops=("add",),
        modes=("reset", "interval"),
        mode="interval",
        components=(0, 1),
        names=XYZ,
    ),  # fmt: skip
    "obs_noise": Kind("obs", "obs", ops=_NOISE, modes=_HELD, mode="step"),
    "obs_bias": Kind("obs", "obs", ops=_NOISE, modes=_HELD),
    "action_noise": Kind("action", None, ops=_NOISE, modes=_HELD, mode="step"),
    "action_latency": Kind("latency", None, ops=("abs",), modes=_ONCE),
}


def coerce(name: str, term: RandTerm | Mapping) -> RandTerm:
    """A term from a config (a :class:`RandTerm`, or its dict as saved in a run's ``config.json``)."""
    if isinstance(term, RandTerm):
        return term
    if not isinstance(term, Mapping):
        raise TypeError(f"randomization term {name!r} must be a RandTerm or a dict, got {type(term).__name__}")
    allowed = {f.name for f in dataclasses.fields(RandTerm)}
    unknown = sorted(set(term) - allowed)
    if unknown:
        raise ValueError(f"randomization term {name!r} has no field(s) {unknown}; allowed: {sorted(allowed)}")
    return RandTerm(**{k: tuple(v) if isinstance(v, list) else v for k, v in term.items()})


class Term:
    """A term resolved against the scene: indices, draw buffer, current range. What it acts on adds
    the indices it needs (``write``/``col`` of a model field, ``qadr``/``vadr`` of a state, ``groups``
    of an observation, ...)."""

    def __init__(self, name: str, cfg: RandTerm, kind: Kind) -> None:
        self.name, self.cfg, self.kind = name, cfg, kind
        self.mode = cfg.mode or kind.mode
        self.op = cfg.op or kind.ops[0]
        if len(cfg.range) != 2:  # check() refuses the rest; the bounds are read here already
            raise self.error("range", f"must be two numbers (low, high), got {tuple(cfg.range)!r}")
        self.lo, self.hi = (float(x) for x in cfg.range)
        self.level = 0.0
        self.labels: list[str] = []
        self.draw: torch.Tensor
        self.timer: torch.Tensor | None = None

    def error(self, field: str, msg: str) -> ValueError:
        return ValueError(f"randomization term {self.name!r} ({self.cfg.kind}): {field} {msg}")


LIMIT = 1e6
"""Largest magnitude a range bound may have: beyond it a draw is a typo, not a physical value."""
POSITIVE = ("body_mass", "body_inertia", "geom_size")
"""Kinds whose values MuJoCo needs > 0: a ``scale`` or ``abs`` range must be > 0."""
NON_NEGATIVE = ("geom_friction", "dof_damping", "dof_armature", "dof_frictionloss")
"""Kinds whose values must be >= 0: a ``scale`` or ``abs`` range must be >= 0."""


def check(t: Term) -> None:
    """Refuse a term whose mode, dist, op, ranges, targets or components its kind does not allow."""
    cfg, kind = t.cfg, t.kind
    if t.mode not in kind.modes:
        raise t.error("mode", f"{t.mode!r} is not allowed; allowed: {', '.join(kind.modes)}")
    if cfg.dist not in DISTS or (kind.group == "latency" and cfg.dist != "uniform"):
        allowed = ("uniform",) if kind.group == "latency" else DISTS
        raise t.error("dist", f"{cfg.dist!r} is not allowed; allowed: {', '.join(allowed)}")
    if t.op not in kind.ops:
        raise t.error("op", f"{t.op!r} is not allowed; allowed: {', '.join(kind.ops)}")
    for field, rng in (("range", cfg.range), ("max_range", cfg.max_range), ("interval_s", cfg.interval_s)):
        if rng is None:
            continue
        if len(rng) != 2 or not all(math.isfinite(float(x)) and abs(float(x)) <= LIMIT for x in rng):
            raise t.error(field, f"must be two finite numbers (low, high) within +-{LIMIT:g}, got {rng!r}")
        if rng[0] > rng[1]:
            raise t.error(field, f"{tuple(rng)} is empty: low must be <= high")
    lo, hi = cfg.range
    if cfg.max_range is not None and not (cfg.max_range[0] <= lo and hi <= cfg.max_range[1]):
        raise t.error("max_range", f"{tuple(cfg.max_range)} must contain range {tuple(cfg.range)}")
    widest = cfg.max_range or cfg.range
    if t.op in ("scale", "abs") and (
        (cfg.kind in POSITIVE and widest[0] <= 0) or (cfg.kind in NON_NEGATIVE and widest[0] < 0)
    ):
        bound = "> 0" if cfg.kind in POSITIVE else ">= 0"
        raise t.error("range", f"{tuple(widest)} must be {bound} for {cfg.kind} with op={t.op!r}")
    if cfg.dist == "log_uniform" and widest[0] <= 0:
        raise t.error("range", f"{tuple(widest)} must be > 0 for dist='log_uniform'")
    if kind.group == "latency" and (widest[0] < 0 or any(float(x) != int(x) for x in (*cfg.range, *widest))):
        raise t.error("range", f"{tuple(cfg.range)} must be whole numbers of control steps >= 0")
    if t.mode == "interval" and cfg.interval_s[0] <= 0:
        raise t.error("interval_s", f"{tuple(cfg.interval_s)} must be > 0 seconds")
    if kind.elements in (None,) and cfg.targets is not None:
        raise t.error("targets", f"{cfg.targets!r} given, but {cfg.kind} has no targets; leave it None")
    if kind.elements not in (None, "obs") and cfg.targets is None:
        what = " or ".join(plural(_ELEMENT.get(e, e)) for e in kind.elements.split("_or_"))
        raise t.error("targets", f"is required: a name or regex of the {what} to act on")
    if kind.uniform and cfg.components is not None:
        raise t.error("components", "must be None: one draw scales every component of a target")


# ---------------------------------------------------------------------- resolving names
_ELEMENT = {"free": "free body"}
"""How an ``elements`` word reads in a message."""


def plural(what: str) -> str:
    """``body`` -> ``bodies``, ``free body`` -> ``free bodies``, ``geom`` -> ``geoms`` (for messages)."""
    return what[:-1] + "ies" if what.endswith("y") else what + "s"


def element_names(m: mujoco.MjModel, obj: mujoco.mjtObj, n: int) -> list[str]:
    """The names of ``n`` elements of type ``obj`` (``""`` for an unnamed one)."""
    return [mujoco.mj_id2name(m, obj, i) or "" for i in range(n)]


def compile_targets(t: Term, pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise t.error("targets", f"{pattern!r} is not a valid regex: {e}") from None


def match(t: Term, names: list[str], what: str, scene: str, allowed: list[int] | None = None) -> list[int]:
    """Indices (among ``allowed``, default all) of the ``names`` the term's ``targets`` matches."""
    rx = compile_targets(t, t.cfg.targets)
    pool = range(len(names)) if allowed is None else allowed
    ids = [i for i in pool if names[i] and rx.fullmatch(names[i])]
    if not ids:
        known = [names[i] for i in pool if names[i]]
        raise t.error("targets", f"{t.cfg.targets!r} matches no {what} in {scene}; {plural(what)}: {known}")
    return ids


def components(t: Term, ncomp: int, default: tuple[int, ...] | None) -> list[int]:
    """The term's component selection (or ``default``; ``None``: all ``ncomp``), checked."""
    comps = t.cfg.components if t.cfg.components is not None else default
    comps = list(range(ncomp)) if comps is None else [int(c) for c in comps]
    if not comps or len(set(comps)) != len(comps) or not all(0 <= c < ncomp for c in comps):
        raise t.error("components", f"{t.cfg.components!r}: need distinct indices in 0..{ncomp - 1}")
    return comps


# ---------------------------------------------------------------------- drawing
def uniform(
    generator: torch.Generator, num_envs: int, device: torch.device, lo: float, hi: float, *shape: int
) -> torch.Tensor:
    """``(num_envs, *shape)`` uniform in ``[lo, hi)``."""
    u = torch.rand(num_envs, *shape, generator=generator, device=device)
    return u.mul_(hi - lo).add_(lo)


def sample(t: Term, generator: torch.Generator, num_envs: int, device: torch.device) -> torch.Tensor:
    """``(num_envs, t.k)`` new draws of ``t`` over its current range, in its distribution."""
    lo, hi, dist = t.lo, t.hi, t.cfg.dist
    if t.kind.group == "latency":
        return uniform(generator, num_envs, device, lo, hi + 1.0, t.k).floor_().clamp_(max=hi)
    if dist == "uniform":
        return uniform(generator, num_envs, device, lo, hi, t.k)
    if dist == "log_uniform":
        return uniform(generator, num_envs, device, math.log(lo), math.log(hi), t.k).exp_()
    v = torch.randn(num_envs, t.k, generator=generator, device=device)
    return v.mul_(0.25 * (hi - lo)).add_(0.5 * (lo + hi)).clamp_(lo, hi)


def set_level(t: Term, level: float) -> None:
    """Curriculum: put ``t``'s range ``level`` (0..1) of the way from ``range`` to ``max_range``."""
    t.level = level
    (lo, hi), (mlo, mhi) = t.cfg.range, t.cfg.max_range
    t.lo, t.hi = lo + level * (mlo - lo), hi + level * (mhi - hi)
    if t.kind.group == "latency":
        t.lo, t.hi = float(math.floor(t.lo)), float(math.ceil(t.hi))
