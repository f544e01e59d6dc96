"""Collection speed with torch on 1 or 2 threads: the env step and the policy's forward pass, interleaved.

python docs/benchmarks/collect_threads.py [TASK] [ROUNDS]

Builds TASK's env (default config, 1,024 envs, ``mujoco`` on every core) and an rsl-rl PPO of the task's
network, then alternates rounds with ``torch.set_num_threads(1)`` and ``(2)``. Each round times 24 steps
of training-style collection: ``alg.act(obs)`` (actor and critic forward, a sampled action) and
``env.step``, under ``torch.inference_mode``, the env started at random episode lengths so that episodes
end on most steps. Printed per round: ms per step for the step and for ``act``; then the best of each
setting. MuJoCo's own threads are not changed (``WORLDLOOP_NUM_THREADS``).
"""

from __future__ import annotations

import sys
import time

import torch

from worldloop import make
from worldloop.policies.train import TrainCfg, make_runner

task = sys.argv[1] if len(sys.argv) > 1 else "Franka-Lift-v1"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
cfg = TrainCfg.from_task(task, num_envs=1024, backend="mujoco")
env = make(task, num_envs=1024, backend="mujoco", seed=0, cfg=cfg.env)
runner = make_runner(cfg, env)
obs = runner.env.get_observations()
env.episode_length_buf = torch.randint_like(env.episode_length_buf, high=int(env.max_episode_length))
results: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
with torch.inference_mode():
    for _ in range(2):  # warm-up
        obs, *_ = runner.env.step(runner.alg.act(obs))
    for r in range(rounds):
        for threads in (2, 1):
            torch.set_num_threads(threads)
            t_act = t_step = 0.0
            for _ in range(24):
                t0 = time.perf_counter()
                actions = runner.alg.act(obs)
                t1 = time.perf_counter()
                obs, rewards, dones, extras = runner.env.step(actions)
                runner.alg.storage.clear()
                t_act += t1 - t0
                t_step += time.perf_counter() - t1
            results[threads].append((1e3 * t_step / 24, 1e3 * t_act / 24))
            print(f"round {r} threads {threads}: env.step {1e3 * t_step / 24:6.2f} ms, act {1e3 * t_act / 24:6.2f} ms",
                  flush=True)  # fmt: skip
for threads, rows in results.items():
    step, act = min(x[0] for x in rows), min(x[1] for x in rows)
    print(f"best, torch threads {threads}: env.step {step:.2f} ms, act {act:.2f} ms, sum {step + act:.2f} ms")
env.close()
