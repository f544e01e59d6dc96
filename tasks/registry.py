"""One registry: versioned task id -> (task class, config class)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Task, TaskCfg

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*-v\d+$")


@dataclass(frozen=True)
class TaskSpec:
    id: str
    task_cls: type[Task]
    cfg_cls: type[TaskCfg]

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
    """Look a task up by id; an unknown id names the registered ones."""
    try:
        return _REGISTRY[task_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise KeyError(f"unknown task id {task_id!r}; registered tasks: {known}") from None


def list_tasks() -> list[TaskSpec]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _register_gymnasium(task_id: str) -> None:
    import gymnasium

    gym_id = f"worldloop/{task_id}"
    if gym_id in gymnasium.registry:
        return
    entry = "worldloop.envs.gym_adapter:make_gym_vector_env"
    # A worldloop env is batched by nature: gymnasium.make returns the VectorEnv itself (no
    # single-env wrappers), gymnasium.make_vec the same.
    gymnasium.register(
        id=gym_id,
        entry_point=entry,
        vector_entry_point=entry,
        kwargs={"task_id": task_id},
        disable_env_checker=True,
        order_enforce=False,
    )
