"""`replay`: step a dataset's logged actions again from its logged first states.

    ds = worldloop.data.load("datasets/lift")
    r = worldloop.data.replay(ds, [0, 1, 2], backend="mujoco")
    r.max_error("cube_joint")       # [m] largest distance between replayed and logged cube positions

Each episode's env gets the randomization draws the episode ran with (pinned with
``env.randomizer.set``), its first ``observation.qpos``/``observation.qvel`` (``env.set_state``), and
then its ``action`` rows, one per step. On the CPU the physics is deterministic, so a replay on the
backend the data came from reproduces the logged states. This is the base of log replay and system
identification: the same loop with another model or real actions.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mujoco
import torch

from worldloop.data import layout
from worldloop.data.layout import DatasetError
from worldloop.data.reader import Dataset
from worldloop.envs.batched_env import BatchedEnv
from worldloop.tasks import get_task, make


def task_config(ds: Dataset | str | Path) -> Any:
    """The task config a worldloop dataset (loaded, or its directory) was collected with, rebuilt from
    ``info.json``'s ``worldloop.task_config``.

    Raises:
        DatasetError: no worldloop block, or a stored field the task's config class cannot take back."""
    if isinstance(ds, Dataset):
        where, info = ds.root / layout.INFO_PATH, ds.info
    else:
        where = Path(ds) / layout.INFO_PATH
        info = layout.read_json(where, "meta/info.json")
    wl = info.get("worldloop")
    if not wl or "task_config" not in wl:
        raise DatasetError(f"{where}: no worldloop.task_config: not a dataset worldloop collected")
    cls = get_task(wl["task"]).cfg_cls
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in wl["task_config"]:
            values[f.name] = _from_json(hints[f.name], wl["task_config"][f.name])
    try:
        cfg = cls(**values)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{where}: worldloop.task_config does not build a {cls.__name__}: {e}") from None
    from worldloop.data.collect import config_json

    again = config_json(cfg)
    diff = [k for k in wl["task_config"] if again.get(k) != wl["task_config"][k]]
    if diff:
        raise DatasetError(f"{where}: worldloop.task_config field(s) {diff} do not rebuild as stored")
    return cfg


def _from_json(tp: Any, v: Any) -> Any:
    """A JSON value as the annotated type: tuples, dataclasses and their containers."""
    if v is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for a in args:
            if a is type(None):
                continue
            try:
                return _from_json(a, v)
            except (TypeError, ValueError):
                continue
        return v
    if dataclasses.is_dataclass(tp) and isinstance(v, dict):
        hints = typing.get_type_hints(tp)
        return tp(**{k: _from_json(hints.get(k, Any), x) for k, x in v.items()})
    if origin is tuple and isinstance(v, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], x) for x in v)
        if args and len(args) == len(v):
            return tuple(_from_json(a, x) for a, x in zip(args, v, strict=True))
        return tuple(v)
    if origin is dict and isinstance(v, dict):
        return {k: _from_json(args[1] if args else Any, x) for k, x in v.items()}
    if origin is list and isinstance(v, list):
        return [_from_json(args[0] if args else Any, x) for x in v]
    return v


def make_env(ds: Dataset, *, num_envs: int = 1, backend: str | None = None, seed: int = 0) -> BatchedEnv:
    """An env of the dataset's task and config (``backend``: default the first episode's)."""
    backend = backend or (ds.episodes["backend"][0] if ds.num_episodes else "auto")
    return make(ds.info["worldloop"]["task"], num_envs=num_envs, backend=backend, seed=seed, cfg=task_config(ds))


@dataclass
class ReplayResult:
    """Replayed and logged physics states of some episodes, ``[time, episode, ...]``."""

    episodes: list[int]
    qpos: torch.Tensor
    """``(T, E, nq)`` replayed joint positions before each logged action."""
    logged_qpos: torch.Tensor
    """``(T, E, nq)`` the dataset's ``observation.qpos`` (zero past an episode's end)."""
    valid: torch.Tensor
    """``(T, E)`` bool: the step is inside the episode."""
    mj_model: mujoco.MjModel
    """The scene, for joint names."""

    def max_error(self, joint: str | None = None) -> torch.Tensor:
        """``(E,)`` largest replay-vs-log error over each episode: the distance [m] between the positions
        of a free ``joint`` (e.g. ``"cube_joint"``), or without ``joint`` the largest ``qpos`` difference."""
        if joint is None:
            err = (self.qpos - self.logged_qpos).abs().amax(-1)
        else:
            j = mujoco.mj_name2id(self.mj_model, mujoco.mjtObj.mjOBJ_JOINT, joint)
            if j < 0:
                raise KeyError(f"no joint named {joint!r} in the scene")
            a = int(self.mj_model.jnt_qposadr[j])
            err = torch.linalg.vector_norm(self.qpos[..., a : a + 3] - self.logged_qpos[..., a : a + 3], dim=-1)
        return torch.where(self.valid, err, 0.0).amax(0)


def replay(
    ds: Dataset, episodes: Sequence[int], *, backend: str | None = None, env: BatchedEnv | None = None
) -> ReplayResult:
    """Replay episodes' logged actions from their logged first states (one env per episode).

    Args:
        ds: a dataset collected by worldloop, loaded with ``observation.qpos``, ``observation.qvel`` and
            ``action``.
        episodes: episode indices.
        backend: backend of the env built here (default: the one the first of them was collected on).
        env: an env of the dataset's task with ``len(episodes)`` envs to use instead.

    Raises:
        DatasetError: a column replay needs is not loaded or not in the dataset.
        ValueError: ``env`` has another number of envs.
    """
    eps = [int(e) for e in episodes]
    for col in ("observation.qpos", "observation.qvel", "action"):
        if col not in ds.frames:
            raise DatasetError(f"{ds.root}: column {col!r} is needed for replay; load the dataset with it")
    own = env is None
    env = env or make_env(ds, num_envs=len(eps), backend=backend or ds.episodes["backend"][eps[0]])
    if env.num_envs != len(eps):
        raise ValueError(f"replay of {len(eps)} episodes needs an env with {len(eps)} envs, got {env.num_envs}")
    try:
        for term, values in ds.randomization(eps).items():
            if term in env.randomizer.terms:
                env.randomizer.set(term, values.to(env.device))
        env.reset()
        data = [ds.episode(e) for e in eps]
        T = max(len(d["action"]) for d in data)
        E = len(eps)
        logged = torch.zeros(T, E, env.nq)
        actions = torch.zeros(T, E, env.action_dim)
        valid = torch.zeros(T, E, dtype=torch.bool)
        for i, d in enumerate(data):
            n = len(d["action"])
            logged[:n, i], actions[:n, i], valid[:n, i] = d["observation.qpos"], d["action"], True
        first_qvel = torch.stack([d["observation.qvel"][0] for d in data])
        env.set_state(logged[0].to(env.device), first_qvel.to(env.device))
        qpos = torch.zeros(T, E, env.nq)
        for t in range(T):
            qpos[t] = env.qpos.cpu()
            env.step(actions[t].to(env.device))
        return ReplayResult(eps, qpos, logged, valid, env.mj_model)
    finally:
        if own:
            env.close()
