"""worldloop: batched manipulation environments, world-action policies and sim-to-real benchmarks.

import worldloop
env = worldloop.make("Franka-Reach-v0", num_envs=1024)       # backend="auto": mujoco on CPU
obs, info = env.reset()
obs, reward, terminated, truncated, info = env.step(actions)  # torch tensors, (num_envs, ...)
"""

from __future__ import annotations

__version__ = "0.1.0"

import os as _os
import sys as _sys

# Offscreen rendering (videos) on a machine without a display: MuJoCo picks its OpenGL platform
# once, when it is first imported, so the default must be set before that.
if _sys.platform.startswith("linux") and not (_os.environ.get("DISPLAY") or _os.environ.get("WAYLAND_DISPLAY")):
    _os.environ.setdefault("MUJOCO_GL", "egl")

from worldloop.envs.batched_env import BatchedEnv
from worldloop.tasks import Task, TaskCfg, get_task, list_tasks, register_task


def make(
    task_id: str,
    *,
    num_envs: int = 64,
    backend: str = "auto",
    device: str | None = None,
    seed: int = 0,
    **cfg_overrides,
) -> BatchedEnv:
    """Build ``num_envs`` copies of a registered task on a backend.

    Args:
        task_id: a registered id such as ``"Franka-Reach-v0"`` (see ``worldloop list``).
        num_envs: envs stepped together.
        backend: ``"auto"`` (newton on CUDA, mujoco on CPU), ``"mujoco"`` or ``"newton"``.
        device: torch device of every tensor; default ``cuda`` when the backend can use it, else ``cpu``.
        seed: seeds the env's generator (resets, randomization).
        **cfg_overrides: fields of the task's config dataclass, e.g. ``episode_length_s=2.0``.
    """
    return BatchedEnv(task_id, num_envs=num_envs, backend=backend, device=device, seed=seed, **cfg_overrides)


__all__ = ["BatchedEnv", "Task", "TaskCfg", "get_task", "list_tasks", "make", "register_task"]
