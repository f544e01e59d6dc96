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
from worldloop.envs.loop import Loop, Rollout, evaluate
from worldloop.tasks import Task, TaskCfg, TrainDefaults, get_task, list_tasks, make, register_task

__all__ = [
    "BatchedEnv",
    "Loop",
    "Rollout",
    "Task",
    "TaskCfg",
    "TrainDefaults",
    "evaluate",
    "get_task",
    "list_tasks",
    "make",
    "register_task",
]
