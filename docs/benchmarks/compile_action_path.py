"""Does ``torch.compile`` pay on the arm's action path? Lift-v1, 1,024 envs.

python docs/benchmarks/compile_action_path.py [TASK]

Times ``FrankaArm.actions_to_ctrl`` (differential IK, forward kinematics at the command and the measured state,
gravity torques) eagerly and compiled (``torch.compile``, inductor, static shapes) from the same arm state, the
median of 40 calls each, and prints the graph breaks ``torch._dynamo.explain`` finds and the compile time.
"""

import sys
import time

import torch

from worldloop.tasks import make

task = sys.argv[1] if len(sys.argv) > 1 else "Franka-Lift-v1"
N = 1024
env = make(task, num_envs=N, backend="mujoco", seed=0)
env.reset()
arm = env.task.arm
gen = torch.Generator().manual_seed(0)
actions = [torch.rand(N, env.action_dim, generator=gen) * 2 - 1 for _ in range(6)]
for a in actions[:5]:
    env.step(a)
saved = {k: getattr(arm, k).clone() for k in ("q_cmd", "close_cmd", "grip_cmd")}
saved_target = tuple(t.clone() for t in arm.ee_target)
a = actions[5]


def restore() -> None:
    for k, v in saved.items():
        setattr(arm, k, v.clone())
    arm.ee_target = tuple(t.clone() for t in saved_target)
    arm._cache = None
    env._state_changed()


def median_ms(fn, reps: int = 40) -> float:
    times = []
    for _ in range(reps):
        restore()
        t = time.perf_counter()
        fn(a)
        times.append(time.perf_counter() - t)
    return 1e3 * sorted(times)[reps // 2]


restore()
ref = arm.actions_to_ctrl(a)
eager = median_ms(arm.actions_to_ctrl)
explained = torch._dynamo.explain(arm.actions_to_ctrl)(a)
print(f"graphs {explained.graph_count}, graph breaks {explained.graph_break_count}")
for b in explained.break_reasons:
    print("  break:", str(b.reason).splitlines()[0][:160])
torch._dynamo.reset()
compiled = torch.compile(arm.actions_to_ctrl, dynamic=False)
restore()
t = time.perf_counter()
out = compiled(a)
print(f"compile (first call): {time.perf_counter() - t:.1f} s; max |compiled - eager| = {(out - ref).abs().max():.1e}")
fast = median_ms(compiled)
print(f"eager {eager:.2f} ms, compiled {fast:.2f} ms, eager again {median_ms(arm.actions_to_ctrl):.2f} ms")
