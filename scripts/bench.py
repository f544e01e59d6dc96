"""``worldloop bench``: env-steps/s of a task, against the raw physics limit in the same run.

The env is stepped with uniform random actions. For the ``mujoco`` backend the control sequence
the env sent (each held for ``decimation`` substeps, from the same initial states)
is then replayed open loop by ``mujoco.rollout`` on the same threads in one call per chunk: that
is the physics limit of the scene, and the env's efficiency is
``env_steps_per_s * decimation / raw_physics_steps_per_s``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch


def _machine() -> str:
    return (
        f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"
    )


def bench(task: str, backend: str, num_envs: int, steps: int, seed: int = 0, **overrides) -> dict:
    import worldloop

    env = worldloop.make(task, num_envs=num_envs, backend=backend, seed=seed, **overrides)
    env.reset()
    g = torch.Generator(device=env.device).manual_seed(seed)
    actions = torch.rand(steps, num_envs, env.action_dim, generator=g, device=env.device) * 2 - 1
    warmup = min(5, steps)
    for t in range(warmup):
        env.step(actions[t])
    state0 = _raw_state(env)
    # Record the controls the env really sends (tasks map actions statefully), for the replay.
    sent: list[torch.Tensor] = []
    physics_step = env.backend.step

    def recording_step(ctrl, nsteps):
        sent.append(ctrl.clone())
        return physics_step(ctrl, nsteps)

    env.backend.step = recording_step
    t0 = time.perf_counter()
    for t in range(steps):
        env.step(actions[t])
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    out = {
        "task": task,
        "backend": env.backend_name,
        "device": str(env.device),
        "num_envs": num_envs,
        "steps": steps,
        "decimation": env.cfg.decimation,
        "env_steps_per_s": steps * num_envs / seconds,
        "machine": _machine(),
        "randomization": sorted(getattr(env.cfg, "randomization", {}) or {}),
    }
    out["physics_steps_per_s"] = out["env_steps_per_s"] * env.cfg.decimation
    if env.backend_name == "mujoco":
        raw = raw_rollout_limit(env, state0, torch.stack(sent))
        out["raw_physics_steps_per_s"] = raw
        out["ratio_to_raw"] = out["physics_steps_per_s"] / raw
        out["threads"] = env.backend.num_threads
    env.close()
    return out


def _raw_state(env):
    if env.backend_name == "mujoco":
        return env.backend._state.copy()
    return None


def raw_rollout_limit(env, state0, ctrl: torch.Tensor, chunk_steps: int = 50) -> float:
    """Physics steps/s of ``mujoco.rollout`` replaying ``ctrl`` ``(steps, N, nu)`` from ``state0``."""
    import mujoco
    import numpy as np
    from mujoco import rollout

    be = env.backend
    dec = env.cfg.decimation
    steps, n, nu = ctrl.shape
    # (N, steps * decimation, nu): each policy step's control held for its substeps.
    c = ctrl.permute(1, 0, 2).repeat_interleave(dec, dim=1).to(torch.float64).numpy()
    state = np.ascontiguousarray(state0)
    datas = [mujoco.MjData(be.mj_model) for _ in range(be.num_threads)]
    models = [be.mj_model] * n
    out = np.empty((n, chunk_steps * dec, be.nstate))
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
    return total / seconds


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="worldloop bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="Franka-Reach-v0", help="registered task id")
    p.add_argument("--backend", default="mujoco", help="auto, mujoco or newton")
    p.add_argument("--num-envs", type=int, default=1024, help="envs stepped together")
    p.add_argument("--steps", type=int, default=200, help="timed policy steps per env")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-randomization", action="store_true", help="drop the task's domain randomization preset")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    a = p.parse_args(argv)
    overrides = {"randomization": {}} if a.no_randomization else {}
    r = bench(a.task, a.backend, a.num_envs, a.steps, a.seed, **overrides)
    if a.json:
        print(json.dumps(r))
        return r
    line = (
        f"{r['task']} backend={r['backend']} device={r['device']} num_envs={r['num_envs']} "
        f"randomization={','.join(r['randomization']) or 'none'}: "
        f"{r['env_steps_per_s']:,.0f} env-steps/s ({r['physics_steps_per_s']:,.0f} physics steps/s)"
    )
    if "raw_physics_steps_per_s" in r:
        line += (
            f"; raw mujoco.rollout on {r['threads']} threads: {r['raw_physics_steps_per_s']:,.0f} "
            f"physics steps/s; ratio {r['ratio_to_raw']:.2f}"
        )
    print(line + f"  [{r['machine']}]")
    return r


if __name__ == "__main__":
    main()
