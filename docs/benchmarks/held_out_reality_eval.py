"""Each run's policy at nominal physics and in the held-out reality, on ``mujoco``.

python docs/benchmarks/held_out_reality_eval.py OUT.json RUN [RUN ...]

For every run: its ``best`` checkpoint over 1,000 episodes (1,000 envs, seed 0) with every randomization
term pinned at its nominal value, then with ``worldloop.sim2real.reality.HIDDEN_CHANGES`` pinned (cube mass
x1.6, cube friction x0.6, arm kp x0.8, one control step of latency) and the other terms nominal. Writes
``{run_dir_name: {"nominal": stats, "reality": stats, "drop": float}}``, the ``--reality`` input of
``dr_seed_summary.py``.
"""

import json
import sys
import time

from worldloop.envs.loop import run_episodes
from worldloop.policies.train import inference_policy
from worldloop.sim2real.common import episode_stats, run_terms
from worldloop.sim2real.rank import Setting, setting_env
from worldloop.sim2real.reality import FRANKA_PARAMS, HIDDEN_CHANGES

out, runs = sys.argv[1], sys.argv[2:]
res = {}
for run in runs:
    t0 = time.time()
    terms = {**run_terms(run), **FRANKA_PARAMS}
    row = {}
    for setting, pins in (("nominal", {}), ("reality", HIDDEN_CHANGES)):
        env, runner = setting_env(
            run, Setting(backend="mujoco", pins=dict(pins)), checkpoint="best", terms=terms, num_envs=1000, seed=0
        )
        env.reset(seed=0)
        row[setting] = episode_stats(run_episodes(env, inference_policy(runner, env.num_envs), 1000))
        env.close()
    row["drop"] = row["nominal"]["success_rate"] - row["reality"]["success_rate"]
    res[run.rstrip("/").split("/")[-1]] = row
    rates = {k: (v["success_rate"], v["success_ci95"]) for k, v in row.items() if k != "drop"}
    print(run, rates, f"drop {row['drop']:.3f}", f"{time.time() - t0:.0f}s", flush=True)
with open(out, "w") as f:
    json.dump(res, f, indent=1, default=float)
