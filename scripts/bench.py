"""``worldloop bench``: env-steps/s of a task, against the raw physics limit in the same run.

    worldloop bench --task Franka-Reach-v0 --num-envs 1024 [--no-randomization] [--json]
    worldloop bench --suite [--tasks Franka-Lift-v0 Franka-Push-v0]      # every task, one table
    worldloop bench --task Franka-Lift-v0 --randomization-overhead
    worldloop bench --parameter-mechanisms franka_table.xml --nstep 4
    worldloop bench --task isaaclab:Isaac-Reach-Franka-v0 --num-envs 1024 --decimation 3   # Isaac Lab, 40 Hz

The env is stepped by the :class:`Loop` with uniform random actions, recording only the actuator
controls it sent (``Rollout.ctrl``). For the ``mujoco`` backend that control sequence (each held for
``decimation`` substeps, from the same start state, ``env.backend.get_state()``) is then replayed
open loop by ``mujoco.rollout`` on the same threads in one call per chunk: that is the physics limit
of the scene, and the env's efficiency is ``env_steps_per_s * decimation / raw_physics_steps_per_s``.
The steps are taken in ``--rounds`` rounds, each followed by the replay of its own controls, and the
rates are totals over the rounds: a machine that slows down for a while (another process, a noisy
neighbour on a shared host) then slows both sides of the ratio, not one of them. ``ratio_per_round``
shows how much the ratio moved from round to round.
The other backends have no such reference (``raw_physics_steps_per_s`` is absent): for them the
output gives ``physics_time_fraction``, the share of the env step spent in the engine's own step
(``isaaclab``: Isaac Lab's whole ``step``, physics, scene and managers, so the rest is worldloop's
wrapper).

``--randomization-overhead`` and ``--parameter-mechanisms`` run the randomization benchmarks of
``worldloop.scripts.bench_randomization`` instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from worldloop.envs.loop import Loop
from worldloop.policies.train import Backend
from worldloop.tasks import make


@dataclass(kw_only=True)
class BenchCfg:
    """Env-steps/s of a task against the raw physics limit, or a randomization benchmark."""

    task: str = "Franka-Reach-v0"
    """Registered task id."""
    backend: Backend | None = None
    """Physics backend; default mujoco (isaaclab for ``isaaclab:<id>`` tasks)."""
    num_envs: int = 1024
    """Envs stepped together."""
    steps: int | None = None
    """Timed policy steps per env; default 200 (20 per round with --randomization-overhead)."""
    seed: int = 0
    """Seed of the env generator and the random actions."""
    rounds: int = 4
    """``mujoco``: the timed steps are split into this many rounds, each followed by the raw replay of its
    controls; rates are totals over the rounds."""
    decimation: int | None = None
    """Physics steps per policy step instead of the task's (to compare backends at one control rate)."""
    no_randomization: bool = False
    """Drop the task's domain randomization terms."""
    json: bool = False
    """Print one JSON object instead of text."""
    suite: bool = False
    """Instead: every registered task (or ``--tasks``) in turn at ``--num-envs``, each with its randomization
    preset, printed as one markdown table (the one BENCHMARKS.md holds)."""
    tasks: tuple[str, ...] | None = None
    """``--suite``: the tasks; default every registered task."""
    randomization_overhead: bool = False
    """Instead: env-steps/s with the task's randomization terms and without, in alternating rounds."""
    parameter_mechanisms: str | None = None
    """Instead: raw physics of the ways to give envs their own parameters, on this scene (franka_table.xml)."""
    nstep: int = 4
    """--parameter-mechanisms: substeps per call (the decimation)."""
    repeats: int | None = None
    """Rounds of the randomization benchmarks; default 10 (--randomization-overhead), 20 (--parameter-mechanisms)."""


def _machine() -> str:
    return (
        f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"
    )


def bench(task: str, backend: str, num_envs: int, steps: int, seed: int = 0, rounds: int = 4, **overrides) -> dict:
    """Env-steps/s of ``task`` under uniform random actions; on ``mujoco`` also the raw physics limit, timed in
    ``rounds`` alternating rounds of env steps and the replay of their controls (``steps`` in all).

    ``overrides``: task config fields, e.g. ``randomization={}``.

    Raises:
        ValueError: ``steps`` or ``rounds`` < 1.
    """
    if steps < 1 or rounds < 1:
        raise ValueError(f"bench needs steps >= 1 and rounds >= 1, got steps={steps}, rounds={rounds}")
    env = make(task, num_envs=num_envs, backend=backend, seed=seed, **overrides)
    env.reset()
    g = torch.Generator(device=env.device).manual_seed(seed)
    actions = torch.rand(steps, num_envs, env.action_dim, generator=g, device=env.device) * 2 - 1
    warmup = min(5, steps)
    schedule = iter(torch.cat((actions[:warmup], actions)))

    def policy(obs):
        return next(schedule)

    for _ in Loop(env, policy).run(warmup, fields=()):
        pass
    mujoco = env.backend_name == "mujoco"
    rounds = min(rounds, steps) if mujoco else 1
    env.timing.reset()
    env_s, raw_s, raw_steps, per_round = 0.0, 0.0, 0, []
    for k in range(rounds):
        state0 = env.backend.get_state() if mujoco else None
        # Record only the controls the env sends (tasks map actions statefully), for the replay.
        n = steps * (k + 1) // rounds - steps * k // rounds
        loop = Loop(env, policy)
        ctrl = [r.ctrl for r in loop.run(n, chunk=n, fields=("ctrl",))]
        if env.device.type == "cuda":
            torch.cuda.synchronize()
        env_s += loop.seconds
        if mujoco:
            physics_steps, seconds = raw_rollout(env, state0, torch.cat(ctrl))
            raw_s, raw_steps = raw_s + seconds, raw_steps + physics_steps
            per_round.append((n * num_envs * env.cfg.decimation / loop.seconds) / (physics_steps / seconds))
    out = {
        "task": task,
        "backend": env.backend_name,
        "device": str(env.device),
        "num_envs": num_envs,
        "steps": steps,
        "decimation": env.cfg.decimation,
        "control_hz": 1.0 / env.step_dt,
        "env_steps_per_s": steps * num_envs / env_s,
        "physics_time_fraction": env.timing.physics_fraction,
        "machine": _machine(),
        "randomization": sorted(env.cfg.randomization),
    }
    out["physics_steps_per_s"] = out["env_steps_per_s"] * env.cfg.decimation
    if mujoco:
        out["raw_physics_steps_per_s"] = raw = raw_steps / raw_s
        out["ratio_to_raw"] = out["physics_steps_per_s"] / raw
        out["ratio_per_round"] = per_round
        out["threads"] = env.backend.num_threads
    env.close()
    return out


SUITE_COLUMNS = ("task", "decimation", "env-steps/s", "physics steps/s", "raw mujoco.rollout steps/s", "ratio",
                 "ratio per round, min-max", "physics share of env step")  # fmt: skip
"""Columns of the ``--suite`` table."""


def suite(
    tasks: Sequence[str] | None, backend: str, num_envs: int, steps: int, seed: int = 0, rounds: int = 4
) -> list[dict]:
    """:func:`bench` of every task in turn (default: every registered one), printing a markdown table
    row as each finishes; returns the results."""
    from worldloop.tasks import list_tasks

    names = list(tasks) if tasks else [s.id for s in list_tasks()]
    print("| " + " | ".join(SUITE_COLUMNS) + " |\n|" + "---|" * len(SUITE_COLUMNS), flush=True)
    results = []
    for name in names:
        r = bench(name, backend, num_envs, steps, seed, rounds)
        raw, per_round = r.get("raw_physics_steps_per_s"), r.get("ratio_per_round", [])
        cells = (name, r["decimation"], f"{r['env_steps_per_s']:,.0f}", f"{r['physics_steps_per_s']:,.0f}",
                 "-" if raw is None else f"{raw:,.0f}", "-" if raw is None else f"{r['ratio_to_raw']:.2f}",
                 f"{min(per_round):.2f}-{max(per_round):.2f}" if per_round else "-",
                 f"{r['physics_time_fraction']:.2f}")  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)
        results.append(r)
    print(f"\n{backend} backend, {num_envs} envs, {steps} steps of uniform random actions in {rounds} rounds, "
          f"randomization presets on [{_machine()}]")  # fmt: skip
    return results


def raw_rollout(env, state0, ctrl: torch.Tensor, chunk_steps: int = 50) -> tuple[int, float]:
    """``mujoco.rollout`` replaying ``ctrl`` ``(steps, N, nu)`` from ``state0`` ``(N, nstate)``
    (``mjSTATE_FULLPHYSICS``) on the env's threads, ``chunk_steps`` policy steps per call: returns the
    physics steps taken (``steps * N * decimation``) and the seconds they took."""
    import mujoco
    import numpy as np
    from mujoco import rollout

    be = env.backend
    dec = env.cfg.decimation
    steps, n, nu = ctrl.shape
    # (N, steps * decimation, nu): each policy step's control held for its substeps.
    c = ctrl.permute(1, 0, 2).repeat_interleave(dec, dim=1).to(torch.float64).cpu().numpy()
    state = np.ascontiguousarray(state0)
    datas = [mujoco.MjData(be.mj_model) for _ in range(be.num_threads)]
    models = [be.mj_model] * n
    out = np.empty((n, chunk_steps * dec, state.shape[1]))
    sens = np.empty((n, chunk_steps * dec, be.mj_model.nsensordata))
    total = 0
    with rollout.Rollout(nthread=be.num_threads) as r:
        t0 = time.perf_counter()
        for s in range(0, steps * dec, chunk_steps * dec):
            cc = np.ascontiguousarray(c[:, s : s + chunk_steps * dec])
            k = cc.shape[1]
            r.rollout(
                models,
                datas,
                state,
                cc,
                control_spec=mujoco.mjtState.mjSTATE_CTRL.value,
                nstep=k,
                state=out[:, :k],
                sensordata=sens[:, :k],
                skip_checks=True,
            )
            state = np.ascontiguousarray(out[:, k - 1])
            total += n * k
        seconds = time.perf_counter() - t0
    return total, seconds


def main(argv: Sequence[str] | None = None) -> dict:
    """``worldloop bench``."""
    import tyro

    a = tyro.cli(BenchCfg, args=argv, prog="worldloop bench", config=(tyro.conf.FlagCreatePairsOff,))
    if a.suite:
        results = suite(a.tasks, a.backend or "mujoco", a.num_envs, a.steps or 200, a.seed, a.rounds)
        if a.json:
            print(json.dumps(results))
        return {"suite": results}
    if a.parameter_mechanisms or a.randomization_overhead:
        from worldloop.scripts import bench_randomization as br

        if a.parameter_mechanisms:
            r = br.parameter_mechanisms(a.parameter_mechanisms, a.num_envs, a.nstep, repeats=a.repeats or 20)
        else:
            r = br.randomization_overhead(
                a.task, a.num_envs, a.steps or 20, backend=a.backend or "mujoco", repeats=a.repeats or 10
            )
        if a.json:
            print(json.dumps(r))
        elif a.parameter_mechanisms:
            ways = ", ".join(f"{k.removesuffix('_ms_median')} {v} ms" for k, v in r.items() if k.endswith("_ms_median"))
            print(f"{r['scene']}, {r['num_envs']} envs, {r['nstep']} substeps per call, median per call: {ways}")
        else:
            print(
                f"{r['task']} on {r['backend']}, {r['num_envs']} envs, terms {', '.join(r['terms']) or 'none'}: "
                f"{r['env_steps_per_s_with']:,} env-steps/s with them, {r['env_steps_per_s_without']:,} without; "
                f"ratio {r['ratio_wall_best']:.3f} (best wall clock of {r['repeats']} rounds), "
                f"{r['ratio_cpu_median']:.3f} (median CPU time)"
            )
        return r
    overrides = {"randomization": {}} if a.no_randomization else {}
    if a.decimation is not None:
        overrides["decimation"] = a.decimation
    backend = a.backend or ("isaaclab" if a.task.startswith("isaaclab:") else "mujoco")
    # With --json, stdout holds the one JSON object only: what engines print (Isaac Lab's manager tables)
    # goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if a.json else contextlib.nullcontext():
        r = bench(a.task, backend, a.num_envs, a.steps or 200, a.seed, a.rounds, **overrides)
    if a.json:
        print(json.dumps(r))
        return r
    line = (
        f"{r['task']} backend={r['backend']} device={r['device']} num_envs={r['num_envs']} "
        f"control={r['control_hz']:.0f} Hz "
        f"randomization={','.join(r['randomization']) or 'none'}: "
        f"{r['env_steps_per_s']:,.0f} env-steps/s ({r['physics_steps_per_s']:,.0f} physics steps/s)"
    )
    if "raw_physics_steps_per_s" in r:
        line += (
            f"; raw mujoco.rollout on {r['threads']} threads: {r['raw_physics_steps_per_s']:,.0f} "
            f"physics steps/s; ratio {r['ratio_to_raw']:.2f} "
            f"({min(r['ratio_per_round']):.2f}-{max(r['ratio_per_round']):.2f} over {len(r['ratio_per_round'])} rounds)"
        )
    else:  # the raw-physics replay is mujoco.rollout's: no reference for the other engines
        inside = "Isaac Lab's step (physics, scene, managers)" if r["backend"] == "isaaclab" else "the physics step"
        line += (
            f"; no raw-physics ratio on {r['backend']} (measured for mujoco only); "
            f"{100 * r['physics_time_fraction']:.1f}% of the env step inside {inside}"
        )
    print(line + f"  [{r['machine']}]")
    return r
