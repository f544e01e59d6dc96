"""Where a task's env step loses to the raw physics limit: the torch work, or calling the physics once
per policy step.

python docs/benchmarks/closed_loop_limit.py [TASK ...] [--num-envs 1024] [--steps 100]

For each task (default: every Franka task), with its randomization preset off (so that every replay
below steps the same nominal model with ``mujoco.rollout``), 1,024 envs take uniform random actions
for ``--steps`` policy steps; each step's start state (after the resets) and controls are recorded.
Then, on the same threads, ``mujoco.rollout`` steps

- ``env trajectory, 1 call per step``: the env's own trajectory, from each recorded start state, one
  call of ``decimation`` substeps per policy step: the most a closed-loop env can get from the engine;
- ``open loop, 50 steps per call``: ``worldloop bench``'s raw limit, the same controls from the first
  state in calls of 50 policy steps (no resets, so not quite the env's trajectory).

Columns are physics steps/s; ``torch share`` = 1 - env / (env trajectory, 1 call per step) and
``per-call cost`` = 1 - (1 call per step) / (50 per call). Two rounds of replays per task.
"""

import argparse
import time

import mujoco
import numpy as np
import torch
from mujoco import rollout

import worldloop

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("tasks", nargs="*")
parser.add_argument("--num-envs", type=int, default=1024)
parser.add_argument("--steps", type=int, default=100)
args = parser.parse_args()
tasks = args.tasks or [
    "Franka-Reach-v0", "Franka-Lift-v1", "Franka-Push-v0", "Franka-Stack-v1", "Franka-Open-Drawer-v2",
    "Franka-Peg-Insert-v0",
]  # fmt: skip
n, steps = args.num_envs, args.steps
CTRL = mujoco.mjtState.mjSTATE_CTRL.value
print("| task | env | env trajectory, 1 call per step | open loop, 50 steps per call | torch share | per-call cost |")
print("|---|---:|---:|---:|---:|---:|")
for task in tasks:
    env = worldloop.make(task, num_envs=n, randomization={})
    env.reset()
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        env.step(torch.rand(n, env.action_dim, generator=g) * 2 - 1)
    be, dec = env.backend, env.cfg.decimation
    states, ctrls = [], []
    t_env = 0.0
    for _ in range(steps):
        states.append(be.get_state())
        a = torch.rand(n, env.action_dim, generator=g) * 2 - 1
        t0 = time.perf_counter()
        env.step(a)
        t_env += time.perf_counter() - t0
        ctrls.append(env.ctrl.double().numpy().copy())
    total = steps * n * dec
    datas = [mujoco.MjData(be.mj_model) for _ in range(be.num_threads)]
    models = [be.mj_model] * n
    nstate, nsens = states[0].shape[1], be.mj_model.nsensordata
    per_step, chunked = [], []
    with rollout.Rollout(nthread=be.num_threads) as r:
        for _ in range(2):
            out, sens = np.empty((n, dec, nstate)), np.empty((n, dec, nsens))
            t0 = time.perf_counter()
            for k in range(steps):
                c = np.ascontiguousarray(np.repeat(ctrls[k][:, None], dec, axis=1))
                r.rollout(models, datas, states[k], c, control_spec=CTRL, nstep=dec, state=out, sensordata=sens,
                          skip_checks=True)  # fmt: skip
            per_step.append(total / (time.perf_counter() - t0))
            c = np.repeat(np.stack(ctrls, axis=1), dec, axis=1)  # (n, steps * dec, nu)
            out, sens = np.empty((n, 50 * dec, nstate)), np.empty((n, 50 * dec, nsens))
            st = np.ascontiguousarray(states[0])
            t0 = time.perf_counter()
            for s in range(0, steps * dec, 50 * dec):
                cc = np.ascontiguousarray(c[:, s : s + 50 * dec])
                k = cc.shape[1]
                r.rollout(models, datas, st, cc, control_spec=CTRL, nstep=k, state=out[:, :k], sensordata=sens[:, :k],
                          skip_checks=True)  # fmt: skip
                st = np.ascontiguousarray(out[:, k - 1])
            chunked.append(total / (time.perf_counter() - t0))
    env.close()
    e, p, c = total / t_env, max(per_step), max(chunked)
    print(f"| {task} | {e:,.0f} | {p:,.0f} | {c:,.0f} | {1 - e / p:.2f} | {1 - p / c:.2f} |", flush=True)
