"""One registry: versioned task id -> (task class, config class); :func:`make` builds envs by id."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from worldloop.envs.batched_env import BatchedEnv
    from worldloop.envs.gym_adapter import GymEnv, GymVectorEnv
    from worldloop.envs.task import Task, TaskCfg

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*-v\d+$")

ISAACLAB_PREFIX = "isaaclab:"
"""Task ids ``isaaclab:<Isaac Lab id>`` name Isaac Lab's own tasks (``worldloop.tasks.isaaclab``)."""


@dataclass(frozen=True)
class TaskSpec:
    id: str
    task_cls: type[Task]
    cfg_cls: type[TaskCfg]
    make_env: Callable[..., BatchedEnv] | None = None
    """Builds the env instead of :class:`BatchedEnv` (Isaac Lab tasks): ``make_env(cfg, *, num_envs,
    backend, device, seed, task_id)``."""

    @property
    def summary(self) -> str:
        doc = (self.task_cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


_REGISTRY: dict[str, TaskSpec] = {}


def register_task(task_id: str, cfg_cls: type[TaskCfg]):
    """Class decorator: register a :class:`Task` subclass under a versioned id like ``"My-Task-v0"``.

    Bump the version whenever the meaning of the reward or the observation changes."""
    if not _ID.match(task_id):
        raise ValueError(f"task id {task_id!r} must look like 'Name-v0' (letters, digits, '-', '_', then -v<N>)")

    def deco(task_cls: type[Task]) -> type[Task]:
        old = _REGISTRY.get(task_id)
        if old is not None and old.task_cls.__qualname__ != task_cls.__qualname__:
            raise ValueError(f"task id {task_id!r} is already registered by {old.task_cls.__module__}")
        _REGISTRY[task_id] = TaskSpec(task_id, task_cls, cfg_cls)
        _register_gymnasium(task_id)
        return task_cls

    return deco


def get_task(task_id: str) -> TaskSpec:
    """Look a task up by id; an unknown id names the registered ones. ``isaaclab:<id>`` names an Isaac
    Lab task (imports Isaac Lab; :mod:`worldloop.tasks.isaaclab`)."""
    if task_id.startswith(ISAACLAB_PREFIX):
        from worldloop.tasks.isaaclab import isaaclab_spec

        return isaaclab_spec(task_id)
    try:
        return _REGISTRY[task_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        near = difflib.get_close_matches(task_id, list(_REGISTRY), n=1, cutoff=0.6)
        near = [k for k in _REGISTRY if k.lower() == task_id.lower()] or near  # ids are case-sensitive
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise KeyError(
            f"unknown task id {task_id!r}.{hint} Registered tasks: {known}. A task of your own module registers when "
            "the module is imported: in Python, import it first; on the command line, run the command through "
            "it (python my_task.py <command> ...)"
        ) from None


def list_tasks() -> list[TaskSpec]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def make(
    task_id: str,
    *,
    num_envs: int = 64,
    backend: str = "auto",
    device: str | torch.device | None = None,
    seed: int = 0,
    cfg: TaskCfg | None = None,
    **cfg_overrides,
) -> BatchedEnv:
    """Build ``num_envs`` copies of a registered task on a backend.

    Args:
        task_id: a registered id such as ``"Franka-Reach-v0"`` (see ``worldloop list``), or
            ``"isaaclab:<Isaac Lab id>"`` such as ``"isaaclab:Isaac-Cartpole-v0"`` (an Isaac Lab 3.0 task on
            the ``isaaclab`` backend, :mod:`worldloop.tasks.isaaclab`).
        num_envs: envs stepped together.
        backend: ``"auto"`` (newton on CUDA, mujoco on CPU; isaaclab for Isaac Lab ids), ``"mujoco"``,
            ``"newton"`` or ``"isaaclab"`` (Isaac Lab ids only).
        device: torch device of every tensor; default ``cuda`` when the backend can use it, else ``cpu``.
        seed: seeds the env's generator (resets, randomization).
        cfg: a complete task config (e.g. one saved with a run); default: the task's config class.
        **cfg_overrides: fields of the task's config dataclass, e.g. ``episode_length_s=2.0``, applied
            over ``cfg`` or the defaults. ``weights={"reach": 2.0}`` changes those terms' weights and keeps
            the others (0 drops a term).

    Raises:
        KeyError: unknown task id (the message lists the registered ones).
        TypeError: an override names no field of the task's config (the message lists them).
        ValueError: ``weights`` names no reward term of the task (the message lists them).
        ImportError: an Isaac Lab id without Isaac Lab installed (the message says how to set it up).
    """
    from worldloop.envs.batched_env import BatchedEnv, build_cfg, merge_weights

    spec = get_task(task_id)
    if cfg is None:
        cfg = build_cfg(spec.cfg_cls, cfg_overrides)
    elif cfg_overrides:
        if isinstance(cfg_overrides.get("weights"), dict):
            weights = merge_weights(cfg.weights, cfg_overrides["weights"], type(cfg).__name__)
            cfg_overrides = {**cfg_overrides, "weights": weights}
        cfg = dataclasses.replace(cfg, **cfg_overrides)
    if spec.make_env is not None:
        return spec.make_env(cfg, num_envs=num_envs, backend=backend, device=device, seed=seed, task_id=task_id)
    return BatchedEnv(spec.task_cls, cfg, num_envs=num_envs, backend=backend, device=device, seed=seed, task_id=task_id)


def make_gym_vector_env(
    task_id: str, num_envs: int = 1, numpy: bool = True, render_mode: str | None = None, **kwargs
) -> GymVectorEnv:
    """``gymnasium.make_vec`` entry point of every worldloop task (``worldloop/<task id>``): the batched
    ``VectorEnv``. ``kwargs`` are :func:`make`'s (``backend``, ``seed``, ``device``, config fields)."""
    from worldloop.envs.gym_adapter import GymVectorEnv

    return GymVectorEnv(make(task_id, num_envs=num_envs, **kwargs), numpy=numpy, render_mode=render_mode)


def make_gym_env(
    task_id: str, num_envs: int | None = None, render_mode: str | None = None, **kwargs
) -> GymEnv | GymVectorEnv:
    """``gymnasium.make`` entry point: one env (:class:`~worldloop.envs.gym_adapter.GymEnv`), or with
    ``num_envs`` the batched ``VectorEnv`` as :func:`make_gym_vector_env` builds it."""
    if num_envs is not None:
        return make_gym_vector_env(task_id, num_envs=num_envs, render_mode=render_mode, **kwargs)
    from worldloop.envs.gym_adapter import GymEnv

    return GymEnv(make(task_id, num_envs=1, **kwargs), render_mode=render_mode)


def _register_gymnasium(task_id: str) -> None:
    import gymnasium

    gym_id = f"worldloop/{task_id}"
    if gym_id in gymnasium.registry:
        return
    # gymnasium.make: one env (or with num_envs=N the VectorEnv); gymnasium.make_vec: the batched
    # VectorEnv itself (vector_entry_point, the default mode), or "sync" over single envs.
    gymnasium.register(
        id=gym_id,
        entry_point="worldloop.tasks.registry:make_gym_env",
        vector_entry_point="worldloop.tasks.registry:make_gym_vector_env",
        kwargs={"task_id": task_id},
        disable_env_checker=True,
        order_enforce=False,
    )
