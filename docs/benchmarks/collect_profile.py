"""Where a training iteration's collection time goes: rsl-rl's loop on a trained run, by function.

python docs/benchmarks/collect_profile.py RUN [ITERATIONS]

Loads RUN's best checkpoint into its own env (its config: envs, backend, randomization) and runs rsl-rl's
loop for ITERATIONS (default 6) with the update replaced by a no-op, episodes started at random lengths as
in training, so the env meets training's resets: some env ends its episode on nearly every step. The
first iteration warms up; the rest run under ``cProfile``. Printed: seconds per iteration of collection
and the cumulative time per env step of the functions a step calls (the physics, the task's action,
reward, success and observation code, the resets, the randomizer) and of the policy's ``act``. Then
``worldloop bench``'s view of the same env: the same number of steps with uniform random actions and every
env started together, so that no episode ends (for the tasks whose episodes end only by time).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

import torch

from worldloop.policies.train import load_run

run = sys.argv[1]
iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 6
env, runner = load_run(run, checkpoint="best", seed=0)
runner.alg.update = lambda: (runner.alg.storage.clear(), {})[1]
runner.logger.log = lambda **kw: None
steps_per_it = runner.cfg["num_steps_per_env"]
runner.learn(1, init_at_random_ep_len=True)  # warm-up

prof = cProfile.Profile()
t0 = time.perf_counter()
prof.enable()
runner.learn(iterations - 1)
prof.disable()
wall = time.perf_counter() - t0
n_steps = (iterations - 1) * steps_per_it
stats = pstats.Stats(prof)
cum = {}
for (file, _, name), (_, _, _, ct, _) in stats.stats.items():
    key = (file.split("worldloop/")[-1].split("site-packages/")[-1], name)
    cum[key] = cum.get(key, 0.0) + ct
wanted = [
    ("envs/batched_env.py", "step"),
    ("envs/backends/mujoco_backend.py", "step"),
    ("envs/batched_env.py", "_reset_envs"),
    ("envs/batched_env.py", "_poses"),
    ("envs/randomization/randomizer.py", "reset"),
    ("envs/randomization/randomizer.py", "observe"),
    ("envs/randomization/randomizer.py", "actions"),
    ("envs/randomization/randomizer.py", "step"),
    ("tasks/robots/franka.py", "actions_to_ctrl"),
    ("tasks/robots/franka.py", "reset"),
]
per_it = wall / (iterations - 1)
print(f"{run}: {per_it:.2f} s per iteration of collection ({steps_per_it} steps of {env.num_envs} envs)")
print(f"{'function':60s} ms per env step")
for key in wanted:
    hits = [v for (f, n), v in cum.items() if f.endswith(key[0]) and n == key[1]]
    if hits:
        print(f"{key[0] + ':' + key[1]:60s} {1e3 * sum(hits) / n_steps:8.2f}")
task_file = type(env.task).__module__.split(".")[-1] + ".py"
for name in ("rewards", "success", "terminated", "observe", "reset"):
    hits = [v for (f, n), v in cum.items() if f.endswith(task_file) and n == name]
    if hits:
        print(f"{'tasks/' + task_file + ':' + name:60s} {1e3 * sum(hits) / n_steps:8.2f}")
act = [v for (f, n), v in cum.items() if "rsl_rl" in f and n == "act"]
print(f"{'rsl_rl PPO.act (policy and value forward)':60s} {1e3 * sum(act) / n_steps:8.2f}")

env.reset(seed=0)
gen = torch.Generator().manual_seed(0)
actions = [torch.rand(env.num_envs, env.action_dim, generator=gen) * 2 - 1 for _ in range(n_steps)]
t0 = time.perf_counter()
with torch.inference_mode():
    for a in actions:
        env.step(a)
print(f"bench-style: {1e3 * (time.perf_counter() - t0) / n_steps:.2f} ms per env step (random actions, no resets)")
env.close()
