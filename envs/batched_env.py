"""`BatchedEnv`: a task on a backend, stepped as one batch of torch tensors.

Step contract (all tensors have leading dimension ``num_envs`` and live on ``env.device``)::

    obs, reward, terminated, truncated, info = env.step(actions)   # actions (num_envs, action_dim)

- ``obs``: ``{"policy": (num_envs, n_policy), "critic": (num_envs, n_critic)}`` float32.
- ``reward`` ``(num_envs,)``: ``sum_k weights[k] * term_k`` of the task's reward terms.
- ``terminated`` / ``truncated`` ``(num_envs,)`` bool: a terminal state was reached / the episode
  hit ``episode_length_s`` (or its physics diverged, see below).
- ``info``: ``success`` ``(num_envs,)`` bool, ``reward_terms`` ``{name: (num_envs,)}`` (unweighted),
  ``final_obs`` (the observation *before* the autoreset; meaningful where an episode ended),
  ``time_outs`` (= ``truncated & ~terminated``, the name rsl-rl reads: a step that is both
  terminated and truncated is terminal, never bootstrapped).

Partial autoreset, same step: envs whose episode ended are reset inside ``step``; the ``obs``
returned for them is the first observation of their next episode, and the last observation of
the finished episode is in ``info["final_obs"]``. Envs that did not end are untouched.

A NaN or a solver blow-up in an env's physics never propagates: that env is reset, reported as
truncated with zero reward, and counted in ``env.num_physics_resets``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mujoco
import torch

from worldloop.envs.backends import make_backend, resolve_backend
from worldloop.envs.kinematics import ForwardKinematics, Poses
from worldloop.envs.randomization import Randomizer, prepare_scene
from worldloop.envs.task import Task, TaskCfg

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


def resolve_scene(scene: str) -> Path:
    """A scene name in ``assets/`` or a path; a missing file names both places looked in."""
    p = Path(scene).expanduser()
    if p.is_file():
        return p.resolve()
    q = ASSETS_DIR / scene
    if q.is_file():
        return q
    raise FileNotFoundError(f"scene {scene!r} not found: not a file, and not in {ASSETS_DIR}")


def load_scene(scene: str) -> tuple[mujoco.MjModel, Path]:
    """Compile an MJCF scene; a malformed file is refused with MuJoCo's message and the path."""
    path = resolve_scene(scene)
    try:
        return mujoco.MjModel.from_xml_path(os.fspath(path)), path
    except ValueError as e:
        raise ValueError(f"MJCF scene {path} does not compile: {e}") from None


def build_cfg(cfg_cls: type[TaskCfg], overrides: dict) -> TaskCfg:
    """Instantiate a task config with overrides; unknown fields name the allowed ones."""
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"{cfg_cls.__name__} has no field(s) {unknown}; allowed: {sorted(names)}")
    if isinstance(overrides.get("weights"), dict):
        overrides = {**overrides, "weights": merge_weights(cfg_cls().weights, overrides["weights"], cfg_cls.__name__)}
    return cfg_cls(**overrides)  # BatchedEnv checks the values (check_cfg)


def merge_weights(defaults: dict[str, float], given: dict[str, float], where: str) -> dict[str, float]:
    """Reward weights ``given`` over a task's ``defaults``: the terms not given keep their weight (set one
    to 0 to drop it), as ``--env.weights.NAME`` does on the command line.

    Raises:
        ValueError: a name that is no reward term of the task (the message lists them); only checked
            where the task lists its terms' weights (every registered task does).
    """
    unknown = sorted(set(given) - set(defaults))
    if defaults and unknown:
        raise ValueError(f"{where}: weights name no reward term {unknown}; the terms: {sorted(defaults)}")
    return {**defaults, **given}


def _type_ok(value: Any, tp: Any) -> bool:
    """Whether ``value`` fits the annotation ``tp`` (the types task configs use; others pass)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if tp is float:  # an int is a float here, a bool is neither
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(value) == len(args) and all(_type_ok(v, a) for v, a in zip(value, args, strict=True))
    if origin in (list, set, frozenset):
        return isinstance(value, origin) and (not args or all(_type_ok(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict) and (
            not args or all(_type_ok(k, args[0]) and _type_ok(v, args[1]) for k, v in value.items())
        )
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # a saved config holds it as a dict
        return isinstance(value, (tp, dict))
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


NUMBER_LIMIT = 1e6
"""Largest magnitude a number in a task config may have (beyond it, a typo rather than a setting)."""


def _out_of_bounds(value: Any) -> bool:
    """NaN, infinite or beyond :data:`NUMBER_LIMIT`, anywhere in ``value``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return not (math.isfinite(value) and abs(value) <= NUMBER_LIMIT)
    if isinstance(value, (tuple, list)):
        return any(_out_of_bounds(v) for v in value)
    if isinstance(value, dict):
        return any(_out_of_bounds(v) for v in value.values())
    return False


def check_cfg(cfg: TaskCfg) -> TaskCfg:
    """Refuse a config the env cannot run, naming the field; returns ``cfg``.

    Raises:
        TypeError: a field whose value does not fit its annotation (``episode_length_s="abc"``).
        ValueError: a NaN, infinite or huge (beyond +-1e6) number, ``decimation < 1``,
            ``episode_length_s <= 0`` or ``action_clip <= 0``.
    """
    name = type(cfg).__name__
    try:
        hints = typing.get_type_hints(type(cfg))
    except (NameError, TypeError):  # annotations that do not resolve here are not checked
        hints = {}
    for f in dataclasses.fields(cfg):
        value, tp = getattr(cfg, f.name), hints.get(f.name, Any)
        if not _type_ok(value, tp):
            if typing.get_origin(tp) is typing.Literal:
                raise ValueError(f"{name}.{f.name} must be one of {list(typing.get_args(tp))}, got {value!r}")
            shown = tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")
            got = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
            raise TypeError(f"{name}.{f.name} must be {shown}, got {got} ({type(value).__name__})")
        if _out_of_bounds(value):
            raise ValueError(f"{name}.{f.name} must be finite and within +-{NUMBER_LIMIT:g}, got {value!r}")
    if cfg.decimation < 1:
        raise ValueError(f"{name}.decimation must be >= 1, got {cfg.decimation}")
    if cfg.episode_length_s <= 0:
        raise ValueError(f"{name}.episode_length_s must be > 0, got {cfg.episode_length_s}")
    if cfg.action_clip <= 0:
        raise ValueError(f"{name}.action_clip must be > 0, got {cfg.action_clip}")
    return cfg


def check_actions(env, actions: torch.Tensor) -> torch.Tensor:
    """``actions`` as float32 on ``env.device``.

    Raises:
        ValueError: a shape other than ``(env.num_envs, env.action_dim)``, or NaN/inf values (the message
            names the first envs that hold them).
    """
    if not isinstance(actions, torch.Tensor):
        actions = torch.as_tensor(actions, dtype=torch.float32)
    expected = (env.num_envs, env.action_dim)
    if tuple(actions.shape) != expected:
        raise ValueError(
            f"{env.task_id}: actions must have shape (num_envs, action_dim) = {expected}, got {tuple(actions.shape)}"
        )
    actions = actions.to(env.device, torch.float32)
    if not bool(torch.isfinite(actions).all()):
        bad = (~torch.isfinite(actions).all(-1)).nonzero().flatten().tolist()
        raise ValueError(f"{env.task_id}: actions contain NaN or inf in env(s) {bad[:10]}")
    return actions


@dataclass
class StepTiming:
    """Wall-clock seconds spent inside :meth:`BatchedEnv.step` since the last :meth:`reset`
    (``time.perf_counter``): ``physics_s`` in the backend's step (``decimation`` physics steps of every
    env), ``total_s`` in the whole call (physics plus actions, rewards, observations, autoresets).
    On a CUDA device the backend's step is asynchronous, so the split is only meaningful on the CPU."""

    steps: int = 0
    """Calls of ``step`` counted."""
    physics_s: float = 0.0
    """[s] in the backend's step."""
    total_s: float = 0.0
    """[s] in ``step`` as a whole."""

    def reset(self) -> None:
        self.steps, self.physics_s, self.total_s = 0, 0.0, 0.0

    @property
    def physics_fraction(self) -> float:
        """Share of the step's time spent in physics (0 before any step)."""
        return self.physics_s / self.total_s if self.total_s > 0 else 0.0


def _env_method(method):
    """Wrap ``reset``/``step``: no autograd, no inference tensors, one torch thread on the CPU.

    - The env's buffers persist across calls, so they must stay normal tensors even when a caller
      steps the env under ``torch.inference_mode()`` (rsl-rl's rollout, ``evaluate``); otherwise a
      later call outside that mode could not update them in place.
    - Its tensors are small (``(num_envs, tens)``), so torch gains nothing from threads there, and its
      thread barrier stalls badly while the physics threads hold the cores (measured: 3 small ops
      took 31 us on 1 thread and 704 us on 2 with the cores busy). The learner keeps its threads:
      the setting is restored on return.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with torch.inference_mode(False), torch.no_grad():
            if self.device.type != "cpu":
                return method(self, *args, **kwargs)
            n = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return method(self, *args, **kwargs)
            finally:
                torch.set_num_threads(n)

    return wrapper


class BatchedEnv:
    """``num_envs`` copies of a task, stepped together.

    Build one with ``worldloop.make(task_id, ...)``, which resolves a registered id; this class takes
    the task class and its config directly and knows no registry.

    Args:
        task_cls: the :class:`Task` subclass.
        cfg: its config (an instance of the task's config dataclass).
        num_envs: envs stepped together (>= 1).
        backend: ``"auto"`` (newton on CUDA, mujoco on CPU), ``"mujoco"`` or ``"newton"``.
        device: torch device of every tensor; default ``cuda`` when the backend can use it, else ``cpu``.
        seed: seeds the env's generator (resets) and the randomizer.
        task_id: the id the task is registered under, used in messages and saved configs.

    Raises:
        ValueError: ``num_envs < 1``, an invalid config value, or a scene that does not compile.
        FileNotFoundError: the scene file does not exist.
    """

    def __init__(
        self,
        task_cls: type[Task],
        cfg: TaskCfg,
        *,
        num_envs: int = 64,
        backend: str = "auto",
        device: str | torch.device | None = None,
        seed: int = 0,
        task_id: str | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        check_cfg(cfg)
        self.task_id = task_id or task_cls.__name__
        self.cfg = cfg
        self.backend_name, self.device = resolve_backend(backend, device)
        self.num_envs = num_envs
        self.seed = seed

        self.mj_model, self.scene_path = load_scene(cfg.scene)
        self.mj_model = m = prepare_scene(self.mj_model, self.scene_path, getattr(cfg, "randomization", None))
        self.nq, self.nv, self.nu = m.nq, m.nv, m.nu
        self.step_dt = cfg.decimation * m.opt.timestep
        """[s] simulated time per policy step."""
        self.max_episode_length = math.ceil(cfg.episode_length_s / self.step_dt)
        """Policy steps per episode."""
        self.ctrl_range = torch.as_tensor(m.actuator_ctrlrange, dtype=torch.float32, device=self.device)

        self.backend = make_backend(
            self.backend_name, m, str(self.scene_path), num_envs=num_envs, device=self.device, seed=seed
        )
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._fk = ForwardKinematics(m, self.device)
        self._fk_bodies: list[int] = []
        self._pose_cache: Poses | None = None
        self._memo: dict = {}

        self.task: Task = task_cls(cfg, self)
        self.action_dim = self.task.action_dim
        self.actions = torch.zeros(num_envs, self.action_dim, device=self.device)
        self.prev_actions = torch.zeros_like(self.actions)
        self.ctrl = torch.zeros(num_envs, self.nu, device=self.device)
        """``(num_envs, nu)`` actuator controls sent to the physics by the last ``step``."""
        self.timing = StepTiming()
        """Time spent in ``step``, physics vs the rest (read by ``worldloop bench``)."""
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.num_physics_resets = torch.zeros((), dtype=torch.long, device=self.device)
        self._ep_return = torch.zeros(num_envs, device=self.device)
        self._ep_names: tuple[str, ...] | None = None
        self._ep_terms: torch.Tensor | None = None  # (num_terms, N) per-episode sums of the reward terms
        self._stat_sums: torch.Tensor | None = None  # over the episodes ended since the last pop_episode_stats
        self._weights: torch.Tensor | None = None  # (num_terms,) reward weights of _ep_names
        self._obs: dict[str, torch.Tensor] | None = None
        self.randomizer = Randomizer(getattr(cfg, "randomization", None), self)
        """Domain randomization of ``cfg.randomization`` (``startup`` terms are applied here)."""

    # ------------------------------------------------------------------ names and state
    @property
    def qpos(self) -> torch.Tensor:
        """``(num_envs, nq)`` joint positions (MuJoCo conventions)."""
        return self.backend.qpos

    @property
    def qvel(self) -> torch.Tensor:
        """``(num_envs, nv)`` joint velocities (MuJoCo conventions)."""
        return self.backend.qvel

    def _id(self, kind: mujoco.mjtObj, name: str) -> int:
        i = mujoco.mj_name2id(self.mj_model, kind, name)
        if i < 0:
            kind_name = str(kind).split("mjOBJ_")[-1].lower()
            raise KeyError(f"no {kind_name} named {name!r} in scene {self.scene_path.name}")
        return i

    def joint_qpos_ids(self, names: list[str]) -> torch.Tensor:
        """Columns of ``qpos`` for 1-DoF joints, resolved once by name."""
        ids = [self.mj_model.jnt_qposadr[self._id(mujoco.mjtObj.mjOBJ_JOINT, n)] for n in names]
        return torch.as_tensor(ids, dtype=torch.long, device=self.device)

    def joint_qvel_ids(self, names: list[str]) -> torch.Tensor:
        """Columns of ``qvel`` for 1-DoF joints, resolved once by name."""
        ids = [self.mj_model.jnt_dofadr[self._id(mujoco.mjtObj.mjOBJ_JOINT, n)] for n in names]
        return torch.as_tensor(ids, dtype=torch.long, device=self.device)

    def keyframe_qpos(self, name: str) -> torch.Tensor:
        """``(nq,)`` qpos of a keyframe in the scene."""
        return torch.as_tensor(
            self.mj_model.key_qpos[self._id(mujoco.mjtObj.mjOBJ_KEY, name)], dtype=torch.float32, device=self.device
        )

    def _state_changed(self) -> None:
        """Forget what was computed from the previous physics state (poses, :meth:`per_state` values)."""
        self._pose_cache = None
        self._memo.clear()

    def per_state(self, key: str, fn):
        """``fn()`` computed once per physics state and kept until the state changes (a step, a reset, a
        ``set_state``): for quantities a task reads in several of ``rewards``, ``success`` and ``observe``."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def _poses(self, body: int) -> Poses:
        """Poses at the current state of bodies including ``body``, computed once per state."""
        if body not in self._fk_bodies:
            self._fk_bodies = self._fk.ancestors([*self._fk_bodies, body])
            self._pose_cache = None
        if self._pose_cache is None:
            self._pose_cache = self._fk.body_poses(self.qpos, self._fk_bodies)
        return self._pose_cache

    def body_pos_w(self, name: str) -> torch.Tensor:
        """``(num_envs, 3)`` [m] world position of a body's frame."""
        body = self._id(mujoco.mjtObj.mjOBJ_BODY, name)
        return self._poses(body).pos(body)

    def body_quat_w(self, name: str) -> torch.Tensor:
        """``(num_envs, 4)`` world orientation ``[w, x, y, z]`` of a body's frame."""
        body = self._id(mujoco.mjtObj.mjOBJ_BODY, name)
        return self._poses(body)[body][1]

    def body_rot_w(self, name: str) -> torch.Tensor:
        """``(num_envs, 3, 3)`` world rotation matrix of a body's frame (columns: its axes in the world)."""
        body = self._id(mujoco.mjtObj.mjOBJ_BODY, name)
        return self._poses(body).rot(body)

    def site_pos_w(self, name: str) -> torch.Tensor:
        """``(num_envs, 3)`` [m] world position of a site."""
        sid = self._id(mujoco.mjtObj.mjOBJ_SITE, name)
        return self._fk.site_pos(self._poses(int(self.mj_model.site_bodyid[sid])), sid)

    def rand(self, *shape: int, low: float | torch.Tensor = 0.0, high: float | torch.Tensor = 1.0) -> torch.Tensor:
        """Uniform samples in ``[low, high)`` from the env's seeded generator."""
        u = torch.rand(*shape, generator=self.generator, device=self.device)
        return low + (high - low) * u

    # ------------------------------------------------------------------ reset / step
    @_env_method
    def reset(self, seed: int | None = None) -> tuple[dict[str, torch.Tensor], dict]:
        """Reset every env. Returns ``(obs, info)``."""
        if seed is not None:
            self.generator.manual_seed(seed)
            self.randomizer.seed(seed)
        self._reset_envs(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        self._obs = self.randomizer.observe(self.task.observe())
        return self._obs, {}

    def get_observations(self) -> dict[str, torch.Tensor]:
        """The current observation groups (resets the envs first if never reset)."""
        if self._obs is None:
            self.reset()
        return self._obs

    def _reset_envs(self, mask: torch.Tensor) -> None:
        qpos, qvel = self.randomizer.reset(mask, *self.task.reset(mask))
        self.backend.set_state(mask, qpos, qvel)
        self._clear_episodes(mask)

    def _clear_episodes(self, mask: torch.Tensor) -> None:
        """Start the episode buffers (length, return, reward terms, last actions) of the envs in ``mask``."""
        self._state_changed()
        keep = ~mask
        self.episode_length_buf *= keep
        self._ep_return *= keep
        if self._ep_terms is not None:
            self._ep_terms *= keep
        self.actions *= keep.unsqueeze(-1)
        self.prev_actions *= keep.unsqueeze(-1)

    @_env_method
    def set_state(
        self, qpos: torch.Tensor, qvel: torch.Tensor, env_ids: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Put a logged physics state into envs, as the first state of a new episode (on every backend).

        Args:
            qpos: ``(len(env_ids), nq)`` joint positions, MuJoCo conventions (``(num_envs, nq)`` without
                ``env_ids``), e.g. a dataset's ``observation.qpos`` rows.
            qvel: ``(len(env_ids), nv)`` joint velocities [m/s, rad/s].
            env_ids: ``(k,)`` indices of the envs to write; default every env.

        Restored: ``qpos``/``qvel`` (the backend clears time, warm start, activations and its solver
        history, as at a reset), the episode buffers (step count 0, return, ``actions`` and
        ``prev_actions`` zero, the ``action_latency`` history), and the command state of the task's
        ``action_term`` where it has a ``reset(mask, qpos)`` (the Franka arm's joint command starts at the
        restored joints). Not restored: what the task sampled at its reset (goals, targets), a
        scripted expert's phase, and the randomization draws: pin those with
        ``env.randomizer.set(name, values, mask)`` first. So replaying an episode's actions from its
        first frame reproduces its physics; a frame in the middle of an episode is restored exactly
        in ``qpos``/``qvel``, but a command integrated over the past steps (``joint_delta``,
        ``ee_delta``, ``ee_pos``) restarts at the measured joints.

        Returns the observation groups of every env after the write (also what the next
        :class:`~worldloop.envs.loop.Loop` run starts from).

        Raises:
            ValueError: wrong shapes, non-finite values, or env ids out of range.
        """
        n = self.num_envs
        if env_ids is None:
            ids = torch.arange(n, device=self.device)
        else:
            ids = torch.as_tensor(env_ids, device=self.device).long().flatten()
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
                raise ValueError(f"{self.task_id}: env_ids must be in 0..{n - 1}, got {ids.tolist()[:10]}")
        for name, x, size, width in (("qpos", qpos, "nq", self.nq), ("qvel", qvel, "nv", self.nv)):
            if tuple(x.shape) != (ids.numel(), width):
                raise ValueError(
                    f"{self.task_id}: set_state {name} must have shape (len(env_ids), {size}) = "
                    f"{(ids.numel(), width)}, got {tuple(x.shape)}"
                )
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"{self.task_id}: set_state {name} contains NaN or inf")
        mask = torch.zeros(n, dtype=torch.bool, device=self.device)
        mask[ids] = True
        full_q, full_v = self.qpos.clone(), self.qvel.clone()
        full_q[ids] = qpos.to(self.device, torch.float32)
        full_v[ids] = qvel.to(self.device, torch.float32)
        self.backend.set_state(mask, full_q, full_v)
        self._clear_episodes(mask)
        self.randomizer.clear_action_history(mask)
        term_reset = getattr(self.task.action_term, "reset", None)
        if term_reset is not None:
            term_reset(mask, self.qpos.clone())
        self._obs = self.randomizer.observe(self.task.observe())
        return self._obs

    @_env_method
    def step(self, actions: torch.Tensor):
        """Advance every env by one policy step; see the module docstring for the contract."""
        t0 = time.perf_counter()
        actions = self._check_actions(actions)
        self.prev_actions.copy_(self.actions)
        self.actions.copy_(actions.clamp(-self.cfg.action_clip, self.cfg.action_clip))
        ctrl = self.task.actions_to_ctrl(self.randomizer.actions(self.actions))
        self.ctrl.copy_(ctrl)
        self.randomizer.step()
        t1 = time.perf_counter()
        diverged = self.backend.step(ctrl, self.cfg.decimation)
        self.timing.physics_s += time.perf_counter() - t1
        self._state_changed()
        self.episode_length_buf += 1

        terms = self.task.rewards()
        if tuple(terms) != self._ep_names:
            self._start_terms(tuple(terms))
        stacked = torch.stack(list(terms.values()))  # (num_terms, N)
        reward = self._weights @ stacked
        success = self.task.success()
        terminated = self.task.terminated() & ~diverged
        truncated = (self.episode_length_buf >= self.max_episode_length) | diverged
        reward = torch.where(diverged, 0.0, reward)
        self.num_physics_resets += diverged.sum()

        self._accumulate(reward, stacked, success, terminated | truncated, diverged)
        final_obs = self.randomizer.observe(self.task.observe())
        done = terminated | truncated
        if self.device.type != "cpu" or bool(done.any()):  # a host sync is free on the CPU only
            self._reset_envs(done)
            obs = self.randomizer.observe(self.task.observe())
        else:
            obs = final_obs
        self._obs = obs
        info = {
            "success": success,
            "reward_terms": terms,
            "final_obs": final_obs,
            "time_outs": truncated & ~terminated,
        }
        self.timing.steps += 1
        self.timing.total_s += time.perf_counter() - t0
        return obs, reward, terminated, truncated, info

    def _check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        return check_actions(self, actions)

    # ------------------------------------------------------------------ episode statistics
    def _start_terms(self, names: tuple[str, ...]) -> None:
        """A new set of reward terms (the first step, or a task that changed its terms): their weights
        ``(len(names),)`` (0 for a term without one), episode sums from zero, and the stats restart."""
        unknown = sorted(set(self.cfg.weights) - set(names))
        if unknown:
            raise ValueError(
                f"{self.task_id}: cfg.weights name no reward term {unknown}; the task's terms: {list(names)}"
            )
        self._ep_names = names
        self._weights = torch.tensor([self.cfg.weights.get(k, 0.0) for k in names], device=self.device)
        self._ep_terms = torch.zeros(len(names), self.num_envs, device=self.device)
        self._stat_sums = None

    def _accumulate(self, reward, stacked, success, done, diverged) -> None:
        """Add this step to the episode sums, and the sums of episodes ending now (``done``) to the stats:
        return, length, success and each term's sum in one product."""
        self._ep_return += reward
        self._ep_terms += stacked
        d = done.float()
        rows = torch.cat((d[None], self._ep_return[None], self.episode_length_buf[None].float(), success[None].float()))
        sums = torch.cat((torch.cat((rows, self._ep_terms)) @ d, diverged.float().sum()[None]))
        self._stat_sums = sums if self._stat_sums is None else self._stat_sums + sums

    def pop_episode_stats(self) -> dict[str, float]:
        """Means over episodes finished since the last call: ``return``, ``length`` (steps), ``success``
        (rate at the final step), ``term/<name>`` (per-episode sum of each raw reward term), plus
        ``episodes`` (count) and ``physics_resets`` (count), and ``curriculum/<term>`` levels of the
        randomization curriculum, which this call advances. One host sync; call it once per log line."""
        stats = {}
        if self._stat_sums is not None:
            terms = (f"term/{k}" for k in self._ep_names)
            names = ("episodes", "return", "length", "success", *terms, "physics_resets")
            stats = dict(zip(names, self._stat_sums.tolist(), strict=True))
        self._stat_sums = None
        n = stats.get("episodes", 0.0)
        out = {"episodes": n, "physics_resets": stats.get("physics_resets", 0.0)}
        if n > 0:
            out.update({k: v / n for k, v in stats.items() if k not in out})
        out.update(self.randomizer.update_curriculum(out.get("success")))
        return out

    def close(self) -> None:
        self.backend.close()
