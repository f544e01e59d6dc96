"""Where one batched env step spends its time: torch ops around the physics, at 1,024 envs.

python docs/benchmarks/env_step_profile.py [TASK] [NUM_ENVS]

Steps the task's env (``mujoco`` backend, its default config) with uniform random actions: 10 steps of
warm-up, 50 timed steps (ms per step, env-steps/s, the physics share of the step), then 20 steps under
``torch.profiler`` and the table of the torch ops with the most self CPU time. Everything outside
``aten::`` ops in the step is the physics (``mujoco.rollout``) and Python. The timed steps also give the
wall time per step of each part of the step path (the task's methods, the arm's action, the physics).
"""

import collections
import functools
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from worldloop.tasks import make

task = sys.argv[1] if len(sys.argv) > 1 else "Franka-Lift-v0"
num_envs = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
env = make(task, num_envs=num_envs, backend="mujoco", seed=0)
env.reset()
gen = torch.Generator().manual_seed(0)
actions = [torch.rand(num_envs, env.action_dim, generator=gen) * 2 - 1 for _ in range(60)]
for a in actions[:10]:
    env.step(a)
spent: dict[str, float] = collections.defaultdict(float)


def timed(name, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        spent[name] += time.perf_counter() - t
        return out

    return wrapper


task_obj = env.task
for name in ("actions_to_ctrl", "rewards", "success", "terminated", "observe", "reset"):
    setattr(task_obj, name, timed(f"task.{name}", getattr(task_obj, name)))
arm = getattr(task_obj, "action_term", None)
for name in ("_ik_step", "_move_target", "_cmd_poses"):
    if arm is not None and hasattr(arm, name):
        setattr(arm, name, timed(f"arm.{name}", getattr(arm, name)))
env.backend.step = timed("physics", env.backend.step)
env.timing.reset()
t0 = time.perf_counter()
for a in actions[10:]:
    env.step(a)
dt = (time.perf_counter() - t0) / 50
print(
    f"{task}: {1e3 * dt:.2f} ms per step, {num_envs / dt:,.0f} env-steps/s, "
    f"physics share {env.timing.physics_fraction:.2f}"
)
print("ms per step by part (nested parts are inside the ones above them):")
for name, sec in sorted(spent.items(), key=lambda kv: -kv[1]):
    print(f"  {name:24s} {1e3 * sec / 50:7.2f}")
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for a in actions[:20]:
        env.step(a)
ops = [e for e in prof.key_averages() if e.key.startswith("aten::")]
print(f"torch ops per step: {sum(e.count for e in ops) / 20:,.0f}, their self CPU time per step: "
      f"{sum(e.self_cpu_time_total for e in ops) / 20 / 1e3:.2f} ms")  # fmt: skip
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
