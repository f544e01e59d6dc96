"""Tasks: one file each, registered at import under a versioned id."""

from worldloop.envs.task import Task, TaskCfg, TrainDefaults
from worldloop.tasks.registry import TaskSpec, get_task, list_tasks, make, register_task

# Built-in tasks register themselves on import.
from worldloop.tasks import (  # noqa: E402, F401  isort: skip
    cartpole,
    franka_drawer,
    franka_lift,
    franka_peg_insert,
    franka_push,
    franka_reach,
    franka_stack,
)

__all__ = ["Task", "TaskCfg", "TaskSpec", "TrainDefaults", "get_task", "list_tasks", "make", "register_task"]
