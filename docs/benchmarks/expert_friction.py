"""A task's scripted expert with a cube's friction pinned: is the task physically solvable there?

python docs/benchmarks/expert_friction.py [TASK] [TARGETS]      # default Franka-Lift-v1, cube

For each friction factor (x nominal, ``geom_friction`` of the ``TARGETS`` geoms pinned, the task's other
randomization terms off), the expert's success over 500 seeded episodes (500 envs) with its 95% interval.
"""

import sys
import time

from worldloop.envs.randomization.terms import RandTerm
from worldloop.scripts.expert import evaluate_expert

task = sys.argv[1] if len(sys.argv) > 1 else "Franka-Lift-v1"
targets = sys.argv[2] if len(sys.argv) > 2 else "cube"
for f in (0.4, 0.5, 0.6, 0.8, 1.0, 1.5):
    t0 = time.time()
    rand = {"object_friction": RandTerm(kind="geom_friction", targets=targets, range=(f, f))}
    r = evaluate_expert(task, num_envs=500, num_episodes=500, randomization=rand)
    lo, hi = r.success_ci95
    print(
        f"{task} {targets} friction x{f}: expert success {100 * r.success_rate:.1f}% ({100 * lo:.1f}-{100 * hi:.1f}%), "
        f"mean return {r.mean_return:.1f} ({time.time() - t0:.0f} s)",
        flush=True,
    )
