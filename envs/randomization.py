"""Domain randomization: named terms drawn per env from a seeded generator, applied from nominal values.

A task declares its terms (its preset) in its config; each can be changed from the command line
(``--rand NAME.FIELD=VALUE``) or replaced::

    randomization: dict[str, RandTerm] = field(default_factory=lambda: {
        "cube_mass": RandTerm(kind="body_mass", targets="cube", range=(0.5, 2.0)),   # x nominal
        "cube_friction": RandTerm(kind="geom_friction", targets="cube", range=(0.5, 1.5)),
        "obs_noise": RandTerm(kind="obs_noise", dist="gaussian", range=(-0.01, 0.01)),
    })

Kinds (``targets`` is a regex, full match, over the MuJoCo names in brackets; default op first):

=================== ================ ============================================== =============
kind                targets          a draw is                                      ops
=================== ================ ============================================== =============
body_mass           bodies           mass [kg] (``body_mass``)                      scale add abs
body_com            bodies           centre of mass x/y/z [m] (``body_ipos``)       add abs
body_inertia        bodies           principal moments, one factor per body         scale
geom_friction       geoms            sliding/torsional/rolling friction (comp. 0)   scale add abs
geom_size           geoms            primitive size [m], one draw for all axes      scale add
dof_damping         joints           damping of each dof [N m s/rad]                scale add abs
dof_armature        joints           armature of each dof [kg m^2]                  scale add abs
dof_frictionloss    joints           dry friction of each dof [N m]                 scale add abs
actuator_stiffness  actuators        kp = ``gainprm[0]`` (an affine bias follows)   scale add abs
actuator_damping    actuators        kv = ``-biasprm[2]``                           scale add abs
gravity             --               gravity x/y/z [m/s^2] (``opt.gravity``)        add scale abs
initial_pose        free bodies or   offset of the reset pose: x/y/z [m],           add
                    1-dof joints     rx/ry/rz [rad] world axes (comp. 0, 1, 5)
push                free bodies or   velocity kick: vx/vy/vz [m/s], wx/wy/wz        add
                    1-dof joints     [rad/s] body axes (comp. 0, 1); joint [rad/s]
impulse             free bodies      linear impulse [N s]; kick = impulse / mass    add
obs_noise/obs_bias  obs groups       per observation value (default ``policy``)     add scale
action_noise        --               per action value, clipped to ``action_clip``   add scale
action_latency      --               control steps of delay, integer in ``range``   abs
=================== ================ ============================================== =============

Modes: ``startup`` (drawn once at construction), ``reset`` (drawn for the envs being reset),
``interval`` (per env, every ``interval_s`` seconds, timers independent of episodes), ``step``
(every policy step; obs and action kinds). Defaults: ``reset``; ``step`` for ``obs_noise`` and
``action_noise``; ``interval`` for ``push`` and ``impulse``.

Distributions over ``range = (low, high)``, so every draw lies in the range: ``uniform``,
``log_uniform`` (``low > 0``), ``gaussian`` (mean at the centre, std a quarter of the width, clipped).

Ops: ``scale`` (nominal * draw), ``add`` (nominal + draw), ``abs`` (draw). Each time a parameter
changes it is recomputed from the scene's nominal value through every term on it, in declaration
order, so nothing drifts. Physical parameters go through ``backend.set_model_params`` and mean
the same on every backend.

Backends: the ``mujoco`` backend keeps per-env parameters as ``mujoco.batch.Batch`` per-simulation
fields over one shared model (+2-3% physics time at 1,024 Franka envs, where one ``MjModel`` copy per
env cost +25-30%); ``newton`` writes Newton's per-world ``Model`` arrays and publishes them with
``SolverMuJoCo.notify_model_changed`` before the next step (once per step at most; on a GPU every
step with a reset term, since which envs reset is not read back). A ``body_com`` term recompiles the
scene with its bodies non-"simple" so MuJoCo C may move their centre of mass (``prepare_scene``).

Reading and setting (sweeps, system identification): ``env.randomizer.values()`` gives each term's
current draws ``(num_envs, k)`` (``columns(term)`` names the k columns), ``physical(term)`` the
parameter values the physics has; ``set(term, value)`` pins a term's draw (e.g. ``0.3`` in every
env) until ``release(term)``.

Curriculum: a term with ``max_range`` widens its range toward it by ``CURRICULUM_STEP`` of the gap
whenever the mean success rate of the last ``CURRICULUM_WINDOW`` reports (``env.pop_episode_stats``,
once per training iteration) exceeds ``CURRICULUM_SUCCESS``; the levels are logged there as
``curriculum/<term>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np
import torch

from worldloop.envs.backends.base import MODEL_PARAM_FIELDS, model_param
from worldloop.envs.kinematics import quat_from_rotvec, quat_mul

if TYPE_CHECKING:
    from worldloop.envs.batched_env import BatchedEnv

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
    """One randomized quantity; the kinds, modes and ops are listed in the module docstring."""

    kind: str
    """What is randomized: ``body_mass``, ``geom_friction``, ``push``, ``obs_noise``, ... (module docstring)."""
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
class _Kind:
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


_XYZ = ("x", "y", "z")
_ONCE = ("startup", "reset")
_HELD = ("startup", "reset", "interval", "step")
_NOISE = ("add", "scale")
KINDS: dict[str, _Kind] = {
    "body_mass": _Kind("model", "body", "body_mass"),
    "body_com": _Kind("model", "body", "body_ipos", 3, ncomp=3, ops=("add", "abs"), modes=_ONCE, names=_XYZ),
    "body_inertia": _Kind("model", "body", "body_inertia", 3, ncomp=3, uniform=True, ops=("scale",)),
    "geom_friction": _Kind(
        "model", "geom", "geom_friction", 3, ncomp=3, components=(0,), names=("slide", "torsion", "roll")
    ),  # fmt: skip
    "geom_size": _Kind("model", "geom", "geom_size", 3, ncomp=3, uniform=True, ops=("scale", "add"), modes=_ONCE),
    "dof_damping": _Kind("model", "joint", "dof_damping"),
    "dof_armature": _Kind("model", "joint", "dof_armature"),
    "dof_frictionloss": _Kind("model", "joint", "dof_frictionloss"),
    "actuator_stiffness": _Kind("model", "actuator", "actuator_gainprm", 10, col=0),
    "actuator_damping": _Kind("model", "actuator", "actuator_biasprm", 10, col=2),
    "gravity": _Kind("model", None, "opt.gravity", 3, ncomp=3, ops=("add", "scale", "abs"), names=_XYZ),
    "initial_pose": _Kind("pose", "free_or_joint", ops=("add",), modes=("reset",)),
    "push": _Kind("push", "free_or_joint", ops=("add",), modes=("reset", "interval"), mode="interval"),
    "impulse": _Kind(
        "push",
        "free",
        ncomp=3,
        ops=("add",),
        modes=("reset", "interval"),
        mode="interval",
        components=(0, 1),
        names=_XYZ,
    ),  # fmt: skip
    "obs_noise": _Kind("obs", "obs", ops=_NOISE, modes=_HELD, mode="step"),
    "obs_bias": _Kind("obs", "obs", ops=_NOISE, modes=_HELD),
    "action_noise": _Kind("action", None, ops=_NOISE, modes=_HELD, mode="step"),
    "action_latency": _Kind("latency", None, ops=("abs",), modes=_ONCE),
}
_FREE = {  # free-body targets of pose/push kinds: (components, default selection, labels)
    "initial_pose": (6, (0, 1, 5), ("x", "y", "z", "rx", "ry", "rz")),
    "push": (6, (0, 1), ("vx", "vy", "vz", "wx", "wy", "wz")),
    "impulse": (3, (0, 1), _XYZ),
}
_G = mujoco.mjtGeom
_PRIMITIVE = {
    int(g) for g in (_G.mjGEOM_SPHERE, _G.mjGEOM_CAPSULE, _G.mjGEOM_ELLIPSOID, _G.mjGEOM_CYLINDER, _G.mjGEOM_BOX)
}


def _coerce(name: str, term: RandTerm | Mapping) -> RandTerm:
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


def prepare_scene(
    mj_model: mujoco.MjModel, scene_path, terms: Mapping[str, RandTerm | Mapping] | None
) -> mujoco.MjModel:
    """The scene to simulate with ``terms``: ``mj_model`` itself, or, if a ``body_com`` term targets a
    body MuJoCo compiled as "simple" (its mass-matrix sparsity assumes the centre of mass at the body
    origin, so ``mj_setConst`` refuses to move it), the scene recompiled with ``simple="false"`` on
    those bodies (same physics to ~1e-12 otherwise)."""
    bodies = set()
    for name, cfg in (terms or {}).items():
        cfg = _coerce(name, cfg)
        if cfg.kind == "body_com" and cfg.targets:
            try:
                rx = re.compile(cfg.targets)
            except re.error:
                continue  # the Randomizer reports it
            bodies |= {
                i for i in range(1, mj_model.nbody) if mj_model.body_simple[i] and rx.fullmatch(mj_model.body(i).name)
            }
    if not bodies:
        return mj_model
    spec = mujoco.MjSpec.from_file(str(scene_path))
    for i in bodies:
        spec.body(mj_model.body(i).name).simple = 0
    return spec.compile()


class _Term:
    """A term resolved against the scene: indices, draw buffer, current range."""

    def __init__(self, name: str, cfg: RandTerm, kind: _Kind) -> None:
        self.name, self.cfg, self.kind = name, cfg, kind
        self.mode = cfg.mode or kind.mode
        self.op = cfg.op or kind.ops[0]
        self.lo, self.hi = (float(x) for x in cfg.range)
        self.level = 0.0
        self.labels: list[str] = []
        self.draw: torch.Tensor
        self.timer: torch.Tensor | None = None

    def error(self, field: str, msg: str) -> ValueError:
        return ValueError(f"randomization term {self.name!r} ({self.cfg.kind}): {field} {msg}")


class Randomizer:
    """The randomization terms of one :class:`BatchedEnv`. The env calls the hooks: construction
    (``startup`` terms), :meth:`reset`, :meth:`actions`, :meth:`step` and :meth:`observe`."""

    def __init__(self, terms: Mapping[str, RandTerm | Mapping] | None, env: BatchedEnv) -> None:
        self.env = env
        self.num_envs, self.device = env.num_envs, env.device
        self.generator = torch.Generator(device=self.device)
        self.seed(env.seed)
        self._pinned: set[str] = set()
        self._recent: list[float] = []
        m = env.mj_model
        self._nominal = {
            f: torch.as_tensor(model_param(m, f), dtype=torch.float64, device=self.device).flatten()
            for f in MODEL_PARAM_FIELDS
        }
        self._current: dict[str, torch.Tensor] = {}
        self.terms: dict[str, _Term] = {}
        probe = None
        for name, cfg in (terms or {}).items():
            cfg = _coerce(name, cfg)
            if cfg.kind not in KINDS:
                raise ValueError(
                    f"randomization term {name!r}: kind {cfg.kind!r} is unknown; allowed: {', '.join(KINDS)}"
                )
            t = _Term(name, cfg, KINDS[cfg.kind])
            self._check(t)
            if t.kind.group == "obs" and probe is None:
                probe = env.task.observe()  # observation sizes, from the current (nominal) state
            self._resolve(t, m, probe)
            self.terms[name] = t
        latency = [t for t in self.terms.values() if t.kind.group == "latency"]
        if len(latency) > 1:
            raise ValueError(f"randomization: one action_latency term at most, got {[t.name for t in latency]}")
        self._latency = latency[0] if latency else None
        if self._latency is not None:
            k = int(max(self._latency.hi, (self._latency.cfg.max_range or (0, 0))[1]))
            self._buf = torch.zeros(k + 1, self.num_envs, env.action_dim, device=self.device)
            self._ptr = 0
        self._by_mode = {mode: [t for t in self.terms.values() if t.mode == mode] for mode in MODES}
        self._fields = [f for f in MODEL_PARAM_FIELDS if any(f in self._fields_of(t) for t in self.terms.values())]
        self._terms_of = {f: [t for t in self.terms.values() if t.kind.group == "model" and t.field == f]
                          for f in self._fields}  # fmt: skip
        self._follows = [
            t for t in self.terms.values() if "actuator_biasprm" in self._fields_of(t) and t.field != "actuator_biasprm"
        ]
        for t in self._follows:
            t.bias_per_kp = (
                self._nominal["actuator_biasprm"][t.follow * 10 + 1] / self._nominal["actuator_gainprm"][t.follow * 10]
            )
        # Every term gets a draw for every env now; startup and interval draws are applied here.
        everyone = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        for t in self.terms.values():
            t.draw = torch.zeros(self.num_envs, t.k, device=self.device)
            self._sample(t, everyone)
            if t.mode == "interval":
                t.timer = self._uniform(*t.cfg.interval_s)
        if self._fields:
            self._apply_model(everyone, self._fields)

    # ------------------------------------------------------------------ construction
    def _check(self, t: _Term) -> None:
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
            if len(rng) != 2 or not all(math.isfinite(float(x)) for x in rng):
                raise t.error(field, f"must be two finite numbers (low, high), got {rng!r}")
            if rng[0] > rng[1]:
                raise t.error(field, f"{tuple(rng)} is empty: low must be <= high")
        lo, hi = cfg.range
        if cfg.max_range is not None and not (cfg.max_range[0] <= lo and hi <= cfg.max_range[1]):
            raise t.error("max_range", f"{tuple(cfg.max_range)} must contain range {tuple(cfg.range)}")
        widest = cfg.max_range or cfg.range
        if cfg.dist == "log_uniform" and widest[0] <= 0:
            raise t.error("range", f"{tuple(widest)} must be > 0 for dist='log_uniform'")
        if kind.group == "latency" and (widest[0] < 0 or any(float(x) != int(x) for x in (*cfg.range, *widest))):
            raise t.error("range", f"{tuple(cfg.range)} must be whole numbers of control steps >= 0")
        if t.mode == "interval" and cfg.interval_s[0] <= 0:
            raise t.error("interval_s", f"{tuple(cfg.interval_s)} must be > 0 seconds")
        if kind.elements in (None,) and cfg.targets is not None:
            raise t.error("targets", f"{cfg.targets!r} given, but {cfg.kind} has no targets; leave it None")
        if kind.elements not in (None, "obs") and cfg.targets is None:
            raise t.error(
                "targets", f"is required: a name or regex of the {kind.elements.replace('_or_', ' or ')}s to act on"
            )
        if kind.uniform and cfg.components is not None:
            raise t.error("components", "must be None: one draw scales every component of a target")

    def _match(self, t: _Term, names: list[str], what: str, allowed: list[int] | None = None) -> list[int]:
        try:
            rx = re.compile(t.cfg.targets)
        except re.error as e:
            raise t.error("targets", f"{t.cfg.targets!r} is not a valid regex: {e}") from None
        pool = range(len(names)) if allowed is None else allowed
        ids = [i for i in pool if names[i] and rx.fullmatch(names[i])]
        if not ids:
            scene = self.env.scene_path.name
            known = [names[i] for i in pool if names[i]]
            raise t.error("targets", f"{t.cfg.targets!r} matches no {what} in {scene}; {what}s: {known}")
        return ids

    def _components(self, t: _Term, ncomp: int, default: tuple[int, ...] | None) -> list[int]:
        comps = t.cfg.components if t.cfg.components is not None else default
        comps = list(range(ncomp)) if comps is None else [int(c) for c in comps]
        if not comps or len(set(comps)) != len(comps) or not all(0 <= c < ncomp for c in comps):
            raise t.error("components", f"{t.cfg.components!r}: need distinct indices in 0..{ncomp - 1}")
        return comps

    def _resolve(self, t: _Term, m: mujoco.MjModel, probe: dict | None) -> None:
        """Resolve names to indices once; set the draw width ``t.k`` and its column labels."""
        kind, obj = t.kind, mujoco.mjtObj

        def names(o, n):
            return [mujoco.mj_id2name(m, o, i) or "" for i in range(n)]

        if kind.group == "model":
            t.field = kind.field
            if kind.elements == "body":
                els = self._match(t, names(obj.mjOBJ_BODY, m.nbody), "body", list(range(1, m.nbody)))
                labels = [m.body(i).name for i in els]
            elif kind.elements == "geom":
                gnames = names(obj.mjOBJ_GEOM, m.ngeom)
                els = self._match(t, gnames, "geom")
                if kind.field == "geom_size":
                    flat = [gnames[i] for i in els if int(m.geom_type[i]) not in _PRIMITIVE]
                    if flat:
                        raise t.error("targets", f"geom_size resizes primitive solids only; not {flat}")
                labels = [gnames[i] for i in els]
            elif kind.elements == "joint":
                jnts = self._match(t, names(obj.mjOBJ_JOINT, m.njnt), "joint")
                els, labels = [], []
                for j in jnts:
                    nd = {0: 6, 1: 3}.get(int(m.jnt_type[j]), 1)
                    els += range(m.jnt_dofadr[j], m.jnt_dofadr[j] + nd)
                    labels += [m.joint(j).name] if nd == 1 else [f"{m.joint(j).name}[{d}]" for d in range(nd)]
            elif kind.elements == "actuator":
                els = self._match(t, names(obj.mjOBJ_ACTUATOR, m.nu), "actuator")
                labels = [m.actuator(i).name for i in els]
            else:
                els, labels = [0], ["gravity"]
            comps = [0] if kind.uniform else self._components(t, kind.ncomp, kind.components)
            per_el = 1 if kind.uniform else len(comps)  # draws per target element
            write, col = [], []  # field column written <- draw column read
            for ei, e in enumerate(els):
                for ci, c in enumerate(range(kind.stride) if kind.uniform else comps):
                    write.append(e * kind.stride + kind.col + c)
                    col.append((0 if t.cfg.shared else ei) * per_el + (0 if kind.uniform else ci))
            t.write = torch.as_tensor(write, device=self.device)
            t.col = torch.as_tensor(col, device=self.device)
            t.sign = -1.0 if t.cfg.kind == "actuator_damping" else 1.0  # biasprm[2] = -kv
            t.k = (1 if t.cfg.shared else len(els)) * per_el
            suffix = [f".{kind.names[c]}" for c in comps] if kind.names and not kind.uniform else [""]
            t.labels = [b + x for b in (["|".join(labels)] if t.cfg.shared else labels) for x in suffix]
            if t.cfg.kind == "actuator_stiffness":  # where an affine bias -kp * q must follow kp
                affine = m.actuator_biastype == int(mujoco.mjtBias.mjBIAS_AFFINE)
                follow = [e for e in els if affine[e] and m.actuator_gainprm[e, 0]]
                t.follow = torch.as_tensor(follow, dtype=torch.long, device=self.device)
        elif kind.group in ("pose", "push"):
            self._resolve_bodies_or_joints(t, m, names)
        elif kind.group == "obs":
            groups = list(probe)
            pattern = t.cfg.targets or "policy"
            try:
                sel = [g for g in groups if re.fullmatch(pattern, g)]
            except re.error as e:
                raise t.error("targets", f"{pattern!r} is not a valid regex: {e}") from None
            if not sel:
                raise t.error("targets", f"{pattern!r} matches no observation group; groups: {groups}")
            t.groups, start, t.labels = [], 0, []
            for g in sel:
                comps = self._components(t, probe[g].shape[-1], None)
                n = 1 if t.cfg.shared else len(comps)
                cols = None if comps == list(range(probe[g].shape[-1])) else torch.as_tensor(comps, device=self.device)
                t.groups.append((g, cols, slice(start, start + n)))
                t.labels += [f"{g}[*]"] if t.cfg.shared else [f"{g}[{c}]" for c in comps]
                start += n
            t.k = start
        elif kind.group == "action":
            comps = self._components(t, self.env.action_dim, None)
            t.cols = torch.as_tensor(comps, device=self.device)
            t.k = 1 if t.cfg.shared else len(comps)
            t.labels = ["a[*]"] if t.cfg.shared else [f"a[{c}]" for c in comps]
        else:  # latency
            t.k, t.labels = 1, ["steps"]

    def _resolve_bodies_or_joints(self, t: _Term, m: mujoco.MjModel, names) -> None:
        """``initial_pose``/``push``/``impulse`` targets: free bodies (by body name) or 1-dof joints."""
        free, hinge, slide = (int(j) for j in (mujoco.mjtJoint.mjJNT_FREE, mujoco.mjtJoint.mjJNT_HINGE,
                                                mujoco.mjtJoint.mjJNT_SLIDE))  # fmt: skip
        free_bodies = [b for b in range(1, m.nbody) if m.body_jntnum[b] and m.jnt_type[m.body_jntadr[b]] == free]
        one_dof = [j for j in range(m.njnt) if m.jnt_type[j] in (hinge, slide)]
        bnames, jnames = names(mujoco.mjtObj.mjOBJ_BODY, m.nbody), names(mujoco.mjtObj.mjOBJ_JOINT, m.njnt)
        try:
            rx = re.compile(t.cfg.targets)
        except re.error as e:
            raise t.error("targets", f"{t.cfg.targets!r} is not a valid regex: {e}") from None
        bodies = [b for b in free_bodies if rx.fullmatch(bnames[b])]
        joints = [] if t.kind.elements == "free" else [j for j in one_dof if rx.fullmatch(jnames[j])]
        if bodies and joints:
            raise t.error("targets", f"{t.cfg.targets!r} mixes free bodies {[bnames[b] for b in bodies]} and "
                          f"joints {[jnames[j] for j in joints]}; use one term for each")  # fmt: skip
        if not bodies and not joints:
            what = "free body" if t.kind.elements == "free" else "free body or hinge/slide joint"
            known = [bnames[b] for b in free_bodies] + (
                [] if t.kind.elements == "free" else [jnames[j] for j in one_dof]
            )
            raise t.error(
                "targets", f"{t.cfg.targets!r} matches no {what} in {self.env.scene_path.name}; known: {known}"
            )
        t.free = bool(bodies)
        if t.free:
            ncomp, default, comp_names = _FREE[t.cfg.kind]
            jnt, labels, comps = [m.body_jntadr[b] for b in bodies], [bnames[b] for b in bodies], None
            comps = self._components(t, ncomp, default)
        else:
            jnt, labels, comps, comp_names = joints, [jnames[j] for j in joints], self._components(t, 1, (0,)), ("",)
        dev = self.device
        t.qadr = torch.as_tensor([m.jnt_qposadr[j] for j in jnt], device=dev)
        t.vadr = torch.as_tensor([m.jnt_dofadr[j] for j in jnt], device=dev)
        t.comps = torch.as_tensor(comps, device=dev)
        t.k = (1 if t.cfg.shared else len(jnt)) * len(comps)
        base = ["|".join(labels)] if t.cfg.shared else labels
        t.labels = [b + (f".{comp_names[c]}" if t.free else "") for b in base for c in comps]
        if t.cfg.kind == "impulse":  # (targets, nbody) membership of each body in a target's subtree
            sub = np.zeros((len(bodies), m.nbody), dtype=np.float32)
            for i, b in enumerate(bodies):
                for c in range(m.nbody):
                    p = c
                    while p > 0 and p != b:
                        p = m.body_parentid[p]
                    sub[i, c] = p == b
            t.subtree = torch.as_tensor(sub, device=dev)

    @staticmethod
    def _fields_of(t: _Term) -> tuple[str, ...]:
        if t.kind.group != "model":
            return ()
        if t.cfg.kind == "actuator_stiffness" and t.follow.numel():
            return ("actuator_gainprm", "actuator_biasprm")  # an affine bias -kp * q follows kp
        return (t.field,)

    # ------------------------------------------------------------------ sampling
    def seed(self, seed: int) -> None:
        """Reseed the randomization stream (separate from the env's reset sampling)."""
        self.generator.manual_seed((int(seed) * 2654435761 + 0x5EED) % (2**63))

    def _uniform(self, lo: float, hi: float, *shape: int) -> torch.Tensor:
        u = torch.rand(self.num_envs, *shape, generator=self.generator, device=self.device)
        return u.mul_(hi - lo).add_(lo)

    def _sample(self, t: _Term, mask: torch.Tensor | None) -> None:
        """New draws for the envs in ``mask`` (all if None); a pinned term keeps its value."""
        if t.name in self._pinned:
            return
        lo, hi, dist = t.lo, t.hi, t.cfg.dist
        if t.kind.group == "latency":
            v = self._uniform(lo, hi + 1.0, t.k).floor_().clamp_(max=hi)
        elif dist == "uniform":
            v = self._uniform(lo, hi, t.k)
        elif dist == "log_uniform":
            v = self._uniform(math.log(lo), math.log(hi), t.k).exp_()
        else:
            v = torch.randn(self.num_envs, t.k, generator=self.generator, device=self.device)
            v = v.mul_(0.25 * (hi - lo)).add_(0.5 * (lo + hi)).clamp_(lo, hi)
        if mask is None:
            t.draw = v
        else:
            t.draw = torch.where(mask[:, None], v, t.draw)

    # ------------------------------------------------------------------ applying
    def _apply_model(self, mask: torch.Tensor, fields: list[str]) -> None:
        """Recompute ``fields`` from nominal through every term on them; write them for ``mask``."""
        backend, m = self.env.backend, self.env.mj_model
        for f in (f for f in MODEL_PARAM_FIELDS if f in fields):
            v = self._nominal[f].expand(self.num_envs, -1).clone()
            if f == "actuator_biasprm":  # an affine bias -kp * q follows its kp: bias1 = kp * (bias1 / kp)_nominal
                for t in self._follows:
                    v[:, t.follow * 10 + 1] = self._current["actuator_gainprm"][:, t.follow * 10] * t.bias_per_kp
            for t in self._terms_of[f]:
                x, d = v[:, t.write], t.draw[:, t.col].to(v.dtype)
                if t.sign < 0:
                    x = -x
                x = x * d if t.op == "scale" else (x + d if t.op == "add" else d)
                v[:, t.write] = -x if t.sign < 0 else x
            self._current[f] = v
            backend.set_model_params(f, mask, v.view(self.num_envs, *np.shape(model_param(m, f))))

    def _kick(self, t: _Term) -> torch.Tensor:
        """``(num_envs, nv)`` velocity change of a ``push``/``impulse`` term's current draws."""
        n = len(t.vadr)
        d = t.draw.view(self.num_envs, -1, len(t.comps)).expand(-1, n, -1)  # (N, targets, comps)
        if t.cfg.kind == "impulse":
            mass = self._current.get("body_mass", self._nominal["body_mass"].expand(self.num_envs, -1))
            d = d / (mass.float() @ t.subtree.T)[..., None]
        cols = (t.vadr[:, None] + t.comps[None, :]).flatten()
        dv = torch.zeros(self.num_envs, self.env.nv, device=self.device)
        return dv.index_add_(1, cols, d.reshape(self.num_envs, -1))

    def _offset_pose(self, t: _Term, qpos: torch.Tensor) -> torch.Tensor:
        n = len(t.qadr)
        d = t.draw.view(self.num_envs, -1, len(t.comps)).expand(-1, n, -1)
        if not t.free:
            return qpos.index_add(1, t.qadr, d[..., 0])
        off = torch.zeros(self.num_envs, n, 6, device=self.device)
        off[..., t.comps] = d
        qpos = qpos.clone()
        pos_cols = t.qadr[:, None] + torch.arange(3, device=self.device)
        quat_cols = t.qadr[:, None] + torch.arange(3, 7, device=self.device)
        qpos[:, pos_cols] += off[..., :3]
        qpos[:, quat_cols] = quat_mul(quat_from_rotvec(off[..., 3:]), qpos[:, quat_cols])  # world-axis rotation
        return qpos

    # ------------------------------------------------------------------ env hooks
    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``reset`` terms for the envs in ``mask`` and apply them; returns the initial state the
        task sampled, offset by ``initial_pose`` and ``push``/``impulse`` reset terms."""
        terms = self._by_mode["reset"]
        if not terms and self._latency is None:
            return qpos, qvel
        for t in terms:
            self._sample(t, mask)
        fields = [f for t in terms for f in self._fields_of(t)]
        if fields:
            self._apply_model(mask, fields)
        for t in terms:
            if t.kind.group == "pose":
                qpos = self._offset_pose(t, qpos)
            elif t.kind.group == "push":
                qvel = qvel + self._kick(t)
        if self._latency is not None:  # the history of a new episode is the zero action
            self._buf *= ~mask[None, :, None]
        return qpos, qvel

    def step(self) -> None:
        """Advance the ``interval`` timers by one policy step and apply the terms that are due."""
        terms = self._by_mode["interval"]
        if not terms:
            return
        model_due = push_due = kick = None
        fields = []
        for t in terms:
            t.timer -= self.env.step_dt
            due = t.timer <= 0
            t.timer = torch.where(due, self._uniform(*t.cfg.interval_s), t.timer)
            if self.device.type == "cpu" and not bool(due.any()):  # a host check is free on the CPU only
                continue
            self._sample(t, due)
            if t.kind.group == "push":
                k = self._kick(t) * due[:, None]
                kick, push_due = (k, due) if kick is None else (kick + k, push_due | due)
            elif t.kind.group == "model":
                fields += self._fields_of(t)
                model_due = due if model_due is None else model_due | due
        if fields:
            self._apply_model(model_due, fields)
        if kick is not None:  # a velocity kick, written like a reset of the pushed envs' velocities
            env = self.env
            env.backend.set_state(push_due, env.qpos.clone(), env.qvel + kick)

    def actions(self, actions: torch.Tensor) -> torch.Tensor:
        """The actions the actuators receive: the policy's, delayed by ``action_latency`` and noised."""
        if self._latency is not None:
            L = self._buf.shape[0]
            self._ptr = (self._ptr + 1) % L
            self._buf[self._ptr] = actions
            delay = self._latency.draw[:, 0].long()
            actions = self._buf[(self._ptr - delay) % L, torch.arange(self.num_envs, device=self.device)]
        noise = [t for t in self.terms.values() if t.kind.group == "action"]
        for t in noise:
            if t.mode == "step":
                self._sample(t, None)
            x = actions[:, t.cols]
            x = x * t.draw if t.op == "scale" else x + t.draw
            actions = actions.clone()
            actions[:, t.cols] = x
        if noise:
            clip = self.env.cfg.action_clip
            actions = actions.clamp(-clip, clip)
        return actions

    def observe(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Observation groups with the obs terms applied (new tensors; the task's are not modified)."""
        terms = [t for t in self.terms.values() if t.kind.group == "obs"]
        if not terms:
            return obs
        obs = dict(obs)
        for t in terms:
            if t.mode == "step":
                self._sample(t, None)
            for group, cols, part in t.groups:
                x, d = obs[group], t.draw[:, part]
                if cols is None:  # every column: one op
                    obs[group] = x * d if t.op == "scale" else x + d
                else:
                    x = x.clone()
                    x[:, cols] = x[:, cols] * d if t.op == "scale" else x[:, cols] + d
                    obs[group] = x
        return obs

    # ------------------------------------------------------------------ reading, setting, curriculum
    def _get(self, name: str) -> _Term:
        if name not in self.terms:
            raise KeyError(f"no randomization term {name!r}; terms: {list(self.terms)}")
        return self.terms[name]

    def values(self) -> dict[str, torch.Tensor]:
        """Each term's current draws ``(num_envs, k)`` (copies); :meth:`columns` names the k columns."""
        return {name: t.draw.clone() for name, t in self.terms.items()}

    def columns(self, name: str) -> list[str]:
        """Labels of a term's draw columns, e.g. ``["cube"]``, ``["cube.x", "cube.y"]``."""
        return list(self._get(name).labels)

    def physical(self, name: str) -> torch.Tensor:
        """``(num_envs, n)`` the parameter values the physics has at a model term's targets (every
        component, in the kind's units: e.g. kv for ``actuator_damping``); a non-model term's draws."""
        t = self._get(name)
        if t.kind.group != "model":
            return t.draw.clone()
        v = self.env.backend.get_model_params(t.field).reshape(self.num_envs, -1)
        return t.sign * v[:, t.write]

    def set(self, name: str, value: float | torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Pin term ``name``'s draw to ``value`` (broadcast to ``(num_envs, k)``) in the envs in ``mask``
        (default all) and apply it now; it is no longer redrawn until :meth:`release`."""
        t = self._get(name)
        value = torch.as_tensor(value, dtype=torch.float32, device=self.device)
        try:
            value = value.expand(self.num_envs, t.k)
        except RuntimeError:
            raise ValueError(f"randomization term {name!r}: value of shape {tuple(value.shape)} does not broadcast "
                             f"to (num_envs, k) = {(self.num_envs, t.k)}; columns: {t.labels}") from None  # fmt: skip
        if t is self._latency and not bool(
            ((value >= 0) & (value < self._buf.shape[0]) & (value == value.round())).all()
        ):
            raise ValueError(f"randomization term {name!r}: latency must be whole steps in 0..{self._buf.shape[0] - 1}")
        mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device) if mask is None else mask.to(self.device)
        t.draw = torch.where(mask[:, None], value, t.draw)
        self._pinned.add(name)
        if t.kind.group == "model":
            self._apply_model(mask, list(self._fields_of(t)))

    def release(self, name: str) -> None:
        """Undo :meth:`set`: the term is drawn again at its next mode event."""
        self._get(name)
        self._pinned.discard(name)

    def update_curriculum(self, success_rate: float | None) -> dict[str, float]:
        """Record a success rate (``None``: no episode ended) and widen the curriculum ranges when the
        recent mean exceeds ``CURRICULUM_SUCCESS``; returns ``{"curriculum/<term>": level in [0, 1]}``."""
        terms = [t for t in self.terms.values() if t.cfg.max_range is not None]
        if not terms:
            return {}
        if success_rate is not None:
            self._recent = [*self._recent, float(success_rate)][-CURRICULUM_WINDOW:]
        if len(self._recent) == CURRICULUM_WINDOW and sum(self._recent) / CURRICULUM_WINDOW > CURRICULUM_SUCCESS:
            self._recent = []
            for t in terms:
                self._set_level(t, min(1.0, t.level + CURRICULUM_STEP))
        return {f"curriculum/{t.name}": t.level for t in terms}

    def state_dict(self) -> dict:
        """What a resumed run needs to draw on as if never stopped: the generator and the curriculum."""
        return {
            "generator": self.generator.get_state(),
            "recent": list(self._recent),
            "levels": {name: t.level for name, t in self.terms.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; terms missing from ``state`` keep their level."""
        self.generator.set_state(state["generator"].to(self.generator.device))
        self._recent = [float(x) for x in state["recent"]]
        for name, level in state["levels"].items():
            t = self.terms.get(name)
            if t is None or t.cfg.max_range is None:
                continue
            self._set_level(t, float(level))

    @staticmethod
    def _set_level(t: _Term, level: float) -> None:
        t.level = level
        (lo, hi), (mlo, mhi) = t.cfg.range, t.cfg.max_range
        t.lo, t.hi = lo + level * (mlo - lo), hi + level * (mhi - hi)
        if t.kind.group == "latency":
            t.lo, t.hi = float(math.floor(t.lo)), float(math.ceil(t.hi))

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Each term's current (curriculum-widened) range."""
        return {name: (t.lo, t.hi) for name, t in self.terms.items()}


# ---------------------------------------------------------------------- presets
def manipulation_preset(objects: str) -> dict[str, RandTerm]:
    """The default randomization of the Franka manipulation tasks, for the bodies matching
    ``objects`` (a regular expression over body names): what varies most between a simulated and a
    real pick: the object's mass, the arm's joint damping, and sensor noise. Kept mild enough that
    every task's scripted expert still succeeds."""
    return {
        "object_mass": RandTerm(kind="body_mass", targets=objects, range=(0.7, 1.3), mode="reset"),
        "joint_damping": RandTerm(kind="dof_damping", targets="joint[1-7]", range=(0.5, 2.0), dist="log_uniform"),
        "obs_noise": RandTerm(kind="obs_noise", dist="gaussian", range=(-0.002, 0.002)),
    }


# ---------------------------------------------------------------------- command line
def apply_overrides(terms: Mapping[str, RandTerm], items: list[str]) -> dict[str, RandTerm]:
    """Apply ``--rand`` options to a preset: ``NAME.FIELD=VALUE`` sets a field (tuples comma-separated:
    ``range=0.5,2``), ``NAME=off`` drops a term, ``NAME.kind=...`` on a new name adds one; an unknown
    field or term names the allowed ones."""
    out = {name: _coerce(name, t) for name, t in terms.items()}
    new: dict[str, dict[str, Any]] = {}
    kinds = {f.name: f.type for f in dataclasses.fields(RandTerm)}
    for item in items:
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


def add_rand_option(parser: argparse.ArgumentParser) -> None:
    """The ``--rand NAME.FIELD=VALUE`` option (repeatable) of the command line."""
    parser.add_argument(
        "--rand", action="append", default=argparse.SUPPRESS, metavar="NAME.FIELD=VALUE",
        help="change the task's randomization preset, repeatable: 'obs_noise.range=-0.02,0.02', "
        "'cube_friction.op=abs', 'NAME=off' drops a term, 'new.kind=body_mass' (with new.targets, "
        "new.range) adds one. Fields: kind, range, targets, mode, dist, op, components, shared, "
        "interval_s, max_range (see worldloop/envs/randomization.py)",
    )  # fmt: skip


def preset_with_overrides(cfg_cls: type, items: list[str]) -> dict[str, RandTerm]:
    """A task config class's default ``randomization`` with ``--rand`` options applied."""
    field = next((f for f in dataclasses.fields(cfg_cls) if f.name == "randomization"), None)
    if field is None:
        raise ValueError(f"--rand: {cfg_cls.__name__} has no 'randomization' field; this task has no preset")
    preset = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    return apply_overrides(preset or {}, items)


def bench(task: str, num_envs: int, steps: int, backend: str = "mujoco", repeats: int = 10) -> dict:
    """env-steps/s of ``task`` with its default randomization and without (``randomization={}``), in
    ``repeats`` alternating rounds of ``steps`` steps (the machine is shared, so the rounds interleave):
    the best wall-clock round of each, and the median of process CPU time (all threads) per round."""
    import statistics

    import worldloop

    envs = {
        "with": worldloop.make(task, num_envs=num_envs, backend=backend),
        "without": worldloop.make(task, num_envs=num_envs, backend=backend, randomization={}),
    }
    g = torch.Generator().manual_seed(0)
    actions = torch.rand(steps, num_envs, envs["with"].action_dim, generator=g) * 2 - 1
    wall: dict[str, list[float]] = {k: [] for k in envs}
    cpu: dict[str, list[float]] = {k: [] for k in envs}
    for env in envs.values():
        env.reset()
        for t in range(min(5, steps)):
            env.step(actions[t])
    for _ in range(repeats):
        for k, env in envs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for t in range(steps):
                env.step(actions[t])
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    terms = list(envs["with"].randomizer.terms)
    for env in envs.values():
        env.close()
    n = steps * num_envs
    best = {k: n / min(v) for k, v in wall.items()}
    per_cpu = {k: n / statistics.median(v) for k, v in cpu.items()}
    return {
        "task": task, "backend": backend, "num_envs": num_envs, "steps": steps, "repeats": repeats, "terms": terms,
        "env_steps_per_s_with": round(best["with"]), "env_steps_per_s_without": round(best["without"]),
        "ratio_wall_best": round(best["with"] / best["without"], 3),
        "ratio_cpu_median": round(per_cpu["with"] / per_cpu["without"], 3),
    }  # fmt: skip


def bench_physics(scene: str, num_envs: int, nstep: int, repeats: int = 20) -> dict:
    """Raw physics [ms per call of ``nstep`` substeps of every env] of the ways to give envs their own
    parameters: ``mujoco.rollout`` on one shared model, on one ``MjModel`` copy per env, and
    ``mujoco.batch.Batch`` on one model with per-simulation (expanded) fields; alternating rounds."""
    import copy

    from mujoco import rollout
    from mujoco.batch import Batch

    from worldloop.envs.backends.mujoco_backend import default_num_threads
    from worldloop.envs.batched_env import load_scene

    m, _ = load_scene(scene)
    n, threads, spec = num_envs, default_num_threads(), mujoco.mjtState.mjSTATE_FULLPHYSICS
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, 0) if m.nkey else mujoco.mj_forward(m, d)
    state0 = np.empty(mujoco.mj_stateSize(m, spec))
    mujoco.mj_getState(m, d, state0, spec)
    state0, ctrl = np.tile(state0, (n, 1)), np.tile(d.ctrl, (n, nstep, 1))
    out, sensors = np.empty((n, nstep, state0.shape[1])), np.empty((n, nstep, m.nsensordata))
    datas, runner = [mujoco.MjData(m) for _ in range(threads)], rollout.Rollout(nthread=threads)
    copies = [copy.copy(m) for _ in range(n)]
    batch = Batch(m, n, nthread=threads)
    batch.reset()
    for f in ("body_mass", "dof_damping", "actuator_gainprm", "actuator_biasprm"):
        batch.expand(f)[:] *= np.random.default_rng(0).uniform(0.9, 1.1, batch.expand(f).shape)
    batch.set_const()

    def by_rollout(models):
        runner.rollout(models, datas, state0, ctrl, control_spec=mujoco.mjtState.mjSTATE_CTRL.value, nstep=nstep,
                       state=out, sensordata=sensors, skip_checks=True)  # fmt: skip

    ways = {"rollout_shared_model": lambda: by_rollout([m] * n), "rollout_model_per_env": lambda: by_rollout(copies),
            "batch_expanded_fields": lambda: batch.rollout(nstep, record=())}  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(repeats):
        for k, f in ways.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    runner.close()
    import statistics

    return {"scene": scene, "num_envs": n, "nstep": nstep, "threads": threads,
            **{f"{k}_ms_median": round(1e3 * statistics.median(v), 2) for k, v in times.items()}}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m worldloop.envs.randomization")
    p.add_argument("--bench", action="store_true", help="throughput with the task's default randomization vs none")
    p.add_argument("--task", default="Franka-Reach-v0")
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--backend", default="mujoco")
    p.add_argument("--physics", metavar="SCENE", help="instead: raw physics of the per-env parameter mechanisms")
    p.add_argument("--nstep", type=int, default=4, help="--physics: substeps per call (the decimation)")
    args = p.parse_args(argv)
    if args.physics:
        print(json.dumps(bench_physics(args.physics, args.num_envs, args.nstep, args.repeats)))
    elif args.bench:
        print(json.dumps(bench(args.task, args.num_envs, args.steps, args.backend, args.repeats)))
    else:
        p.print_help()


if __name__ == "__main__":
    main()
