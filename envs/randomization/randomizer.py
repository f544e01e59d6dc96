"""The :class:`Randomizer`: the randomization terms of one env, drawn from one seeded generator.

It resolves each term with the module for what it acts on (:mod:`.model`, :mod:`.state`,
:mod:`.signals`), draws terms at their mode's events, and exposes the draws for reading, pinning
and curriculum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from worldloop.envs.randomization import model, signals, state
from worldloop.envs.randomization.terms import (
    CURRICULUM_STEP,
    CURRICULUM_SUCCESS,
    CURRICULUM_WINDOW,
    KINDS,
    MODES,
    RandTerm,
    Term,
    check,
    coerce,
    sample,
    set_level,
    uniform,
)

if TYPE_CHECKING:
    from worldloop.envs.batched_env import BatchedEnv


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
        self._params = model.ModelParams(env)
        self.terms: dict[str, Term] = {}
        probe = None
        for name, cfg in (terms or {}).items():
            cfg = coerce(name, cfg)
            if cfg.kind not in KINDS:
                raise ValueError(
                    f"randomization term {name!r}: kind {cfg.kind!r} is unknown; allowed: {', '.join(KINDS)}"
                )
            t = Term(name, cfg, KINDS[cfg.kind])
            check(t)
            if t.kind.group == "obs" and probe is None:
                probe = env.task.observe()  # observation sizes, from the current (nominal) state
            self._resolve(t, probe)
            self.terms[name] = t
        latency = [t for t in self.terms.values() if t.kind.group == "latency"]
        if len(latency) > 1:
            raise ValueError(f"randomization: one action_latency term at most, got {[t.name for t in latency]}")
        self._latency = latency[0] if latency else None
        self._delay = None
        if self._latency is not None:
            self._delay = signals.ActionDelay(self._latency, self.num_envs, env.action_dim, self.device)
        self._by_mode = {mode: [t for t in self.terms.values() if t.mode == mode] for mode in MODES}
        self._action_terms = [t for t in self.terms.values() if t.kind.group == "action"]
        self._obs_terms = [t for t in self.terms.values() if t.kind.group == "obs"]
        self._privileged: list[Term] = []
        for name in getattr(env.cfg, "critic_randomization", ()):
            t = self.terms.get(name)
            if t is None or t.kind.group not in ("model", "latency"):
                physical = [n for n, u in self.terms.items() if u.kind.group in ("model", "latency")]
                raise ValueError(
                    f"critic_randomization: {name!r} is not a physical randomization term of this env; "
                    f"physical terms: {physical}"
                )
            self._privileged.append(t)
        self._params.add_terms(list(self.terms.values()))
        # Every term gets a draw for every env now; startup and interval draws are applied here.
        everyone = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        for t in self.terms.values():
            t.draw = torch.zeros(self.num_envs, t.k, device=self.device)
            self._sample(t, everyone)
            if t.mode == "interval":
                t.timer = self._uniform(*t.cfg.interval_s)
        if self._params.fields:
            self._params.apply(everyone, self._params.fields)

    def _resolve(self, t: Term, probe: dict | None) -> None:
        """Resolve names to indices once; set the draw width ``t.k`` and its column labels."""
        env, group = self.env, t.kind.group
        if group == "model":
            model.resolve(t, env.mj_model, env.scene_path.name, self.device)
        elif group in ("pose", "push"):
            state.resolve(t, env.mj_model, env.scene_path.name, self.device)
        elif group == "obs":
            signals.resolve_obs(t, probe, self.device)
        elif group == "action":
            signals.resolve_action(t, env.action_dim, self.device)
        else:
            signals.resolve_latency(t)

    # ------------------------------------------------------------------ sampling
    def seed(self, seed: int) -> None:
        """Reseed the randomization stream (separate from the env's reset sampling)."""
        self.generator.manual_seed((int(seed) * 2654435761 + 0x5EED) % (2**63))

    def _uniform(self, lo: float, hi: float, *shape: int) -> torch.Tensor:
        return uniform(self.generator, self.num_envs, self.device, lo, hi, *shape)

    def _sample(self, t: Term, mask: torch.Tensor | None) -> None:
        """New draws for the envs in ``mask`` (all if None); a pinned term keeps its value."""
        if t.name in self._pinned:
            return
        v = sample(t, self.generator, self.num_envs, self.device)
        if mask is None:
            t.draw = v
        else:
            t.draw = torch.where(mask[:, None], v, t.draw)

    # ------------------------------------------------------------------ env hooks
    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``reset`` terms for the envs in ``mask`` and apply them; returns the initial state the
        task sampled, offset by ``initial_pose`` and ``push``/``impulse`` reset terms."""
        terms = self._by_mode["reset"]
        if not terms and self._delay is None:
            return qpos, qvel
        for t in terms:
            self._sample(t, mask)
        fields = [f for t in terms for f in model.fields_of(t)]
        if fields:
            self._params.apply(mask, fields)
        for t in terms:
            if t.kind.group == "pose":
                qpos = state.offset_pose(t, qpos)
            elif t.kind.group == "push":
                qvel = qvel + state.kick(t, self._params.body_mass(), self.env.nv)
        self.clear_action_history(mask)
        return qpos, qvel

    def clear_action_history(self, mask: torch.Tensor) -> None:
        """Empty the action-latency buffer of the envs in ``mask`` (a reset or a restored state)."""
        if self._delay is not None:
            self._delay.clear(mask)

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
                k = state.kick(t, self._params.body_mass(), self.env.nv) * due[:, None]
                kick, push_due = (k, due) if kick is None else (kick + k, push_due | due)
            elif t.kind.group == "model":
                fields += model.fields_of(t)
                model_due = due if model_due is None else model_due | due
        if fields:
            self._params.apply(model_due, fields)
        if kick is not None:  # a velocity kick, written like a reset of the pushed envs' velocities
            env = self.env
            env.backend.set_state(push_due, env.qpos.clone(), env.qvel + kick)

    def actions(self, actions: torch.Tensor) -> torch.Tensor:
        """The actions the actuators receive: the policy's, delayed by ``action_latency`` and noised."""
        if self._delay is not None:
            actions = self._delay(actions)
        return signals.noise_actions(self._action_terms, actions, self._sample, self.env.cfg.action_clip)

    def observe(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Observation groups with the obs terms applied (new tensors; the task's are not modified); with
        ``critic_randomization`` in the task config, ``obs["critic"]`` gets :meth:`privileged` appended."""
        obs = signals.noise_obs(self._obs_terms, obs, self._sample)
        if self._privileged and "critic" in obs:
            obs = {**obs, "critic": torch.cat((obs["critic"], self.privileged()), dim=-1)}
        return obs

    def privileged(self) -> torch.Tensor:
        """``(num_envs, n)`` the current draws of the terms named in ``critic_randomization``, in that order:
        what is appended to the critic's observation."""
        return torch.cat([t.draw for t in self._privileged], dim=-1)

    # ------------------------------------------------------------------ reading, setting, curriculum
    def _get(self, name: str) -> Term:
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
        return self._params.physical(t)

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
        if t is self._latency:
            n = self._delay.length
            if not bool(((value >= 0) & (value < n) & (value == value.round())).all()):
                raise ValueError(f"randomization term {name!r}: latency must be whole steps in 0..{n - 1}")
        mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device) if mask is None else mask.to(self.device)
        if t.kind.group == "model":
            model.check_values(t, self._params.nominal[t.field], value[mask].double(), "value")
        t.draw = torch.where(mask[:, None], value, t.draw)
        self._pinned.add(name)
        if t.kind.group == "model":
            self._params.apply(mask, list(model.fields_of(t)))

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
                set_level(t, min(1.0, t.level + CURRICULUM_STEP))
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
            set_level(t, float(level))

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Each term's current (curriculum-widened) range."""
        return {name: (t.lo, t.hi) for name, t in self.terms.items()}
