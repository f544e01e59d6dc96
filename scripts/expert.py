"""``worldloop expert``: success rates of the tasks' scripted experts, one JSON line per task.

    worldloop expert --tasks Franka-Lift-v0 Franka-Push-v0 --episodes 1000 [--action-space ee_delta]

Each expert (``Task.expert()``) drives its task through :func:`worldloop.envs.loop.evaluate` over
seeded episodes; ``evaluate_expert`` is the same measurement from Python.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from worldloop.envs.loop import EvalResult, evaluate
from worldloop.policies.train import Backend
from worldloop.tasks import list_tasks, make
from worldloop.tasks.robots.franka import ActionSpace


def expert_tasks() -> list[str]:
    """Ids of the registered tasks that have a scripted expert."""
    return [s.id for s in list_tasks() if s.task_cls.has_expert()]


@dataclass(kw_only=True)
class ExpertCfg:
    """Success rates of the scripted experts."""

    tasks: list[str] = field(default_factory=expert_tasks)
    """Task ids; default every task with an expert."""
    num_envs: int | None = None
    """Envs stepped together; default ``min(episodes, 1000)``."""
    episodes: int = 1000
    """Seeded episodes per task."""
    backend: Backend = "mujoco"
    """Physics backend."""
    seed: int = 0
    """Seed of the env generator."""
    action_space: ActionSpace | None = None
    """Franka action space the expert's targets are carried out in; default each task's own."""


def evaluate_expert(
    task_id: str, *, num_envs: int = 1000, num_episodes: int = 1000, backend: str = "mujoco", seed: int = 0, **cfg
) -> EvalResult:
    """Success rate of a task's scripted expert over ``num_episodes`` seeded episodes.

    ``cfg``: task config fields, e.g. ``action_space="ee_delta"``.

    Raises:
        KeyError: the task has no scripted expert (the message lists those that have one).
    """
    env = make(task_id, num_envs=num_envs, backend=backend, seed=seed, **cfg)
    if not env.task.has_expert():
        env.close()
        raise KeyError(f"{task_id} has no scripted expert; tasks with one: {', '.join(expert_tasks())}")
    try:
        return evaluate(env, lambda obs: env.task.expert(), num_episodes)
    finally:
        env.close()


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """``worldloop expert``: prints and returns one result per task."""
    import tyro

    a = tyro.cli(ExpertCfg, args=argv, prog="worldloop expert")
    results = []
    for task in a.tasks:
        t0 = time.perf_counter()
        r = evaluate_expert(
            task,
            num_envs=a.num_envs or min(a.episodes, 1000),
            num_episodes=a.episodes,
            backend=a.backend,
            seed=a.seed,
            **({"action_space": a.action_space} if a.action_space else {}),
        )
        lo, hi = r.success_ci95
        results.append(
            {
                "task": task,
                "backend": a.backend,
                "action_space": a.action_space or "default",
                "episodes": r.episodes,
                "success_rate": r.success_rate,
                "ci95": [round(lo, 4), round(hi, 4)],
                "mean_length": r.mean_length,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results
