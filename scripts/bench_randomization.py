"""Benchmarks of domain randomization (``worldloop bench``).

- :func:`randomization_overhead`: env-steps/s of a task with its default randomization vs none,
  stepped by the :class:`~worldloop.envs.loop.Loop`.
- :func:`parameter_mechanisms`: raw physics of the ways MuJoCo C can give each env its own model
  parameters (why the ``mujoco`` backend uses ``mujoco.batch.Batch``, see ``BENCHMARKS.md``).
"""

from __future__ import annotations

import copy
import statistics
import time

import mujoco
import numpy as np
import torch

import worldloop
from worldloop.envs.loop import Loop


class _Replay:
    """A policy replaying ``actions`` ``(T, num_envs, action_dim)`` from step :attr:`t` on, cyclically."""

    def __init__(self, actions: torch.Tensor) -> None:
        self.actions, self.t = actions, 0

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        a = self.actions[self.t % len(self.actions)]
        self.t += 1
        return a


def randomization_overhead(task: str, num_envs: int, steps: int, backend: str = "mujoco", repeats: int = 10) -> dict:
    """env-steps/s of ``task`` with its default randomization and without (``randomization={}``), in
    ``repeats`` alternating rounds of ``steps`` steps (the machine is shared, so the rounds interleave):
    the best wall-clock round of each (policy + ``env.step`` time, :attr:`Loop.seconds`), and the
    median of process CPU time (all threads) per round. Both envs replay the same uniform random
    actions in ``[-1, 1]``."""
    envs = {
        "with": worldloop.make(task, num_envs=num_envs, backend=backend),
        "without": worldloop.make(task, num_envs=num_envs, backend=backend, randomization={}),
    }
    g = torch.Generator().manual_seed(0)
    actions = torch.rand(steps, num_envs, envs["with"].action_dim, generator=g) * 2 - 1
    loops = {k: Loop(env, _Replay(actions)) for k, env in envs.items()}
    wall: dict[str, list[float]] = {k: [] for k in envs}
    cpu: dict[str, list[float]] = {k: [] for k in envs}
    for loop in loops.values():  # warm-up
        for _ in loop.run(min(5, steps), chunk=max(1, steps), fields=(), reset=True):
            pass
    for _ in range(repeats):
        for k, loop in loops.items():
            loop.policy.t = 0
            s0, c0 = loop.seconds, time.process_time()
            for _ in loop.run(steps, chunk=max(1, steps), fields=()):
                pass
            wall[k].append(loop.seconds - s0)
            cpu[k].append(time.process_time() - c0)
    terms = list(envs["with"].randomizer.terms)
    for env in envs.values():
        env.close()
    n = steps * num_envs
    best = {k: n / min(v) for k, v in wall.items()}
    per_cpu = {k: n / statistics.median(v) for k, v in cpu.items()}
    return {
        "task": task, "backend": backend, "num_envs": num_envs, "steps": steps, "repeats": repeats, "terms": terms,
        "env_steps_per_s_with": round(best["with"]), "env_steps_per_s_without": round(best["without"]),
        "ratio_wall_best": round(best["with"] / best["without"], 3),
        "ratio_cpu_median": round(per_cpu["with"] / per_cpu["without"], 3),
    }  # fmt: skip


def parameter_mechanisms(scene: str, num_envs: int, nstep: int, repeats: int = 20) -> dict:
    """Raw physics [ms per call of ``nstep`` substeps of every env] of the ways to give envs their own
    parameters: ``mujoco.rollout`` on one shared model, on one ``MjModel`` copy per env, and
    ``mujoco.batch.Batch`` on one model with per-simulation (expanded) fields; alternating rounds."""
    from mujoco import rollout
    from mujoco.batch import Batch

    from worldloop.envs.backends.mujoco_backend import default_num_threads
    from worldloop.envs.batched_env import load_scene

    m, _ = load_scene(scene)
    n, threads, spec = num_envs, default_num_threads(), mujoco.mjtState.mjSTATE_FULLPHYSICS
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, 0) if m.nkey else mujoco.mj_forward(m, d)
    state0 = np.empty(mujoco.mj_stateSize(m, spec))
    mujoco.mj_getState(m, d, state0, spec)
    state0, ctrl = np.tile(state0, (n, 1)), np.tile(d.ctrl, (n, nstep, 1))
    out, sensors = np.empty((n, nstep, state0.shape[1])), np.empty((n, nstep, m.nsensordata))
    datas, runner = [mujoco.MjData(m) for _ in range(threads)], rollout.Rollout(nthread=threads)
    copies = [copy.copy(m) for _ in range(n)]
    batch = Batch(m, n, nthread=threads)
    batch.reset()
    for f in ("body_mass", "dof_damping", "actuator_gainprm", "actuator_biasprm"):
        batch.expand(f)[:] *= np.random.default_rng(0).uniform(0.9, 1.1, batch.expand(f).shape)
    batch.set_const()

    def by_rollout(models):
        runner.rollout(models, datas, state0, ctrl, control_spec=mujoco.mjtState.mjSTATE_CTRL.value, nstep=nstep,
                       state=out, sensordata=sensors, skip_checks=True)  # fmt: skip

    ways = {"rollout_shared_model": lambda: by_rollout([m] * n), "rollout_model_per_env": lambda: by_rollout(copies),
            "batch_expanded_fields": lambda: batch.rollout(nstep, record=())}  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(repeats):
        for k, f in ways.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    runner.close()
    return {"scene": scene, "num_envs": n, "nstep": nstep, "threads": threads,
            **{f"{k}_ms_median": round(1e3 * statistics.median(v), 2) for k, v in times.items()}}  # fmt: skip
