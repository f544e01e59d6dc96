"""Model-parameter kinds: ``body_*``, ``geom_*``, ``dof_*``, ``actuator_*`` and ``gravity``.

Their targets resolve to columns of one MjModel field (:func:`resolve`); :class:`ModelParams`
recomputes a field from the scene's nominal values through every term on it and writes it to the
backend per env (``backend.set_model_params``). :func:`prepare_scene` recompiles a scene whose
bodies a ``body_com`` term moves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import mujoco
import numpy as np
import torch

from worldloop.envs.backends.base import MODEL_PARAM_FIELDS, model_param
from worldloop.envs.randomization.terms import RandTerm, Term, coerce, components, element_names, match

if TYPE_CHECKING:
    from worldloop.envs.batched_env import BatchedEnv

_G = mujoco.mjtGeom
_PRIMITIVE = {
    int(g) for g in (_G.mjGEOM_SPHERE, _G.mjGEOM_CAPSULE, _G.mjGEOM_ELLIPSOID, _G.mjGEOM_CYLINDER, _G.mjGEOM_BOX)
}


def prepare_scene(
    mj_model: mujoco.MjModel, scene_path, terms: Mapping[str, RandTerm | Mapping] | None
) -> mujoco.MjModel:
    """The scene to simulate with ``terms``: ``mj_model`` itself, or, if a ``body_com`` term targets a
    body MuJoCo compiled as "simple" (its mass-matrix sparsity assumes the centre of mass at the body
    origin, so ``mj_setConst`` refuses to move it), the scene recompiled with ``simple="false"`` on
    those bodies (same physics to ~1e-12 otherwise)."""
    bodies = set()
    for name, cfg in (terms or {}).items():
        cfg = coerce(name, cfg)
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


def resolve(t: Term, m: mujoco.MjModel, scene: str, device: torch.device) -> None:
    """Resolve a model term's targets once: the field columns it writes (``t.write``) from which draw
    columns (``t.col``), the draw width ``t.k`` and its column labels."""
    kind, obj = t.kind, mujoco.mjtObj
    t.field = kind.field
    if kind.elements == "body":
        els = match(t, element_names(m, obj.mjOBJ_BODY, m.nbody), "body", scene, list(range(1, m.nbody)))
        labels = [m.body(i).name for i in els]
    elif kind.elements == "geom":
        gnames = element_names(m, obj.mjOBJ_GEOM, m.ngeom)
        els = match(t, gnames, "geom", scene)
        if kind.field == "geom_size":
            flat = [gnames[i] for i in els if int(m.geom_type[i]) not in _PRIMITIVE]
            if flat:
                raise t.error("targets", f"geom_size resizes primitive solids only; not {flat}")
        labels = [gnames[i] for i in els]
    elif kind.elements == "joint":
        jnts = match(t, element_names(m, obj.mjOBJ_JOINT, m.njnt), "joint", scene)
        els, labels = [], []
        for j in jnts:
            nd = {0: 6, 1: 3}.get(int(m.jnt_type[j]), 1)
            els += range(m.jnt_dofadr[j], m.jnt_dofadr[j] + nd)
            labels += [m.joint(j).name] if nd == 1 else [f"{m.joint(j).name}[{d}]" for d in range(nd)]
    elif kind.elements == "actuator":
        els = match(t, element_names(m, obj.mjOBJ_ACTUATOR, m.nu), "actuator", scene)
        labels = [m.actuator(i).name for i in els]
    else:
        els, labels = [0], ["gravity"]
    comps = [0] if kind.uniform else components(t, kind.ncomp, kind.components)
    per_el = 1 if kind.uniform else len(comps)  # draws per target element
    write, col = [], []  # field column written <- draw column read
    for ei, e in enumerate(els):
        for ci, c in enumerate(range(kind.stride) if kind.uniform else comps):
            write.append(e * kind.stride + kind.col + c)
            col.append((0 if t.cfg.shared else ei) * per_el + (0 if kind.uniform else ci))
    t.write = torch.as_tensor(write, device=device)
    t.col = torch.as_tensor(col, device=device)
    t.sign = -1.0 if t.cfg.kind == "actuator_damping" else 1.0  # biasprm[2] = -kv
    t.k = (1 if t.cfg.shared else len(els)) * per_el
    suffix = [f".{kind.names[c]}" for c in comps] if kind.names and not kind.uniform else [""]
    t.labels = [b + x for b in (["|".join(labels)] if t.cfg.shared else labels) for x in suffix]
    nominal = torch.as_tensor(model_param(m, t.field), dtype=torch.float64, device=device).flatten()
    widest = torch.tensor(t.cfg.max_range or t.cfg.range, dtype=torch.float64, device=device)
    check_values(t, nominal, widest.unsqueeze(-1).expand(2, t.k), "range")
    if t.cfg.kind == "geom_friction":
        check_friction_priority(t, m)
    if t.cfg.kind == "actuator_stiffness":  # where an affine bias -kp * q must follow kp
        affine = m.actuator_biastype == int(mujoco.mjtBias.mjBIAS_AFFINE)
        follow = [e for e in els if affine[e] and m.actuator_gainprm[e, 0]]
        t.follow = torch.as_tensor(follow, dtype=torch.long, device=device)


BOUNDS: dict[str, tuple[str, float]] = {
    "body_mass": (">", 0.0),
    "body_inertia": (">", 0.0),
    "geom_size": (">", 0.0),
    "geom_friction": (">=", 0.0),
    "dof_damping": (">=", 0.0),
    "dof_armature": (">=", 0.0),
    "dof_frictionloss": (">=", 0.0),
    "actuator_stiffness": (">", 0.0),
    "actuator_damping": (">=", 0.0),
}
"""The values a model kind may take in the physics (a zero or negative mass, a negative damping or
friction make every step diverge); :func:`check_values` refuses a term or a pinned value outside them."""


def values_of(t: Term, base: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """``(..., len(t.write))`` the physical values ``draws`` ``(..., t.k)`` give at a term's targets from
    the field's values ``base`` (flat ``(F,)`` or per env ``(N, F)``), in the kind's units (kv for
    ``actuator_damping``)."""
    x = t.sign * base[..., t.write].to(draws.dtype)
    d = draws[..., t.col]
    return x * d if t.op == "scale" else (x + d if t.op == "add" else d.expand_as(x * d))


def check_values(t: Term, nominal: torch.Tensor, draws: torch.Tensor, what: str) -> None:
    """Refuse ``draws`` ``(..., t.k)`` of a model term that would put a physical value outside
    :data:`BOUNDS` at any target, naming the term, the target, the value and the allowed range."""
    if t.cfg.kind not in BOUNDS:
        return
    rel, bound = BOUNDS[t.cfg.kind]
    v = values_of(t, nominal, draws).reshape(-1, len(t.write))
    bad = (v <= bound) if rel == ">" else (v < bound)
    if bool(bad.any()):
        col = int(bad.any(0).nonzero()[0, 0])
        label = t.labels[int(t.col[col])]
        scene = float(t.sign * nominal[t.write[col]])
        raise t.error(
            what,
            f"gives {t.cfg.kind} {float(v[:, col].min()):g} at {label!r} (op={t.op!r} on the scene's {scene:g}); "
            f"it must be {rel} {bound:g}",
        )


def check_friction_priority(t: Term, m: mujoco.MjModel) -> None:
    """Refuse a ``geom_friction`` term on a geom that some geom it can touch outranks by ``priority``:
    MuJoCo takes such a contact's friction from the higher-priority geom, so the term would not change
    it (at equal priority the contact takes the larger friction of the two)."""
    geoms = sorted({int(w) // 3 for w in t.write.tolist()})
    for g in geoms:
        touch = ((m.geom_contype & m.geom_conaffinity[g]) | (m.geom_conaffinity & m.geom_contype[g])) != 0
        touch &= m.geom_bodyid != m.geom_bodyid[g]
        above = np.flatnonzero(touch & (m.geom_priority > m.geom_priority[g]))
        if above.size:
            names = [m.geom(int(i)).name or f"geom {int(i)}" for i in above[:4]]
            raise t.error(
                "targets",
                f"{m.geom(g).name!r} (priority {int(m.geom_priority[g])}) touches {names} of higher priority "
                f"(up to {int(m.geom_priority[above].max())}); MuJoCo takes a contact's friction from the geom "
                "of higher priority, so this term would not change those contacts. Randomize the friction of the "
                "objects (class 'object' in tabletop.xml, priority 2) or raise this geom's priority",
            )


def fields_of(t: Term) -> tuple[str, ...]:
    """The model fields a term changes (none for a non-model term)."""
    if t.kind.group != "model":
        return ()
    if t.cfg.kind == "actuator_stiffness" and t.follow.numel():
        return ("actuator_gainprm", "actuator_biasprm")  # an affine bias -kp * q follows kp
    return (t.field,)


class ModelParams:
    """The per-env physical parameters of one env's model terms: the scene's nominal values, the
    current values, and writing them to the backend."""

    def __init__(self, env: BatchedEnv) -> None:
        self.env = env
        self.num_envs, self.device = env.num_envs, env.device
        self.nominal = {
            f: torch.as_tensor(model_param(env.mj_model, f), dtype=torch.float64, device=self.device).flatten()
            for f in MODEL_PARAM_FIELDS
        }
        self.current: dict[str, torch.Tensor] = {}
        self.fields: list[str] = []

    def add_terms(self, terms: list[Term]) -> None:
        """Take the (resolved) terms; the fields any of them changes are :attr:`fields`."""
        self.fields = [f for f in MODEL_PARAM_FIELDS if any(f in fields_of(t) for t in terms)]
        self.terms_of = {f: [t for t in terms if t.kind.group == "model" and t.field == f] for f in self.fields}
        self.follows = [t for t in terms if "actuator_biasprm" in fields_of(t) and t.field != "actuator_biasprm"]
        for t in self.follows:
            t.bias_per_kp = (
                self.nominal["actuator_biasprm"][t.follow * 10 + 1] / self.nominal["actuator_gainprm"][t.follow * 10]
            )

    def apply(self, mask: torch.Tensor, fields: list[str]) -> None:
        """Recompute ``fields`` from nominal through every term on them; write them for ``mask``."""
        backend, m = self.env.backend, self.env.mj_model
        for f in (f for f in MODEL_PARAM_FIELDS if f in fields):
            v = self.nominal[f].expand(self.num_envs, -1).clone()
            if f == "actuator_biasprm":  # an affine bias -kp * q follows its kp: bias1 = kp * (bias1 / kp)_nominal
                for t in self.follows:
                    v[:, t.follow * 10 + 1] = self.current["actuator_gainprm"][:, t.follow * 10] * t.bias_per_kp
            for t in self.terms_of[f]:
                v[:, t.write] = t.sign * values_of(t, v, t.draw.to(v.dtype))
            self.current[f] = v
            backend.set_model_params(f, mask, v.view(self.num_envs, *np.shape(model_param(m, f))))

    def body_mass(self) -> torch.Tensor:
        """``(num_envs, nbody)`` [kg] float64: the current masses (nominal if none is randomized)."""
        return self.current.get("body_mass", self.nominal["body_mass"].expand(self.num_envs, -1))

    def physical(self, t: Term) -> torch.Tensor:
        """``(num_envs, n)`` the values the physics has at a model term's targets, in the kind's units."""
        v = self.env.backend.get_model_params(t.field).reshape(self.num_envs, -1)
        return t.sign * v[:, t.write]
