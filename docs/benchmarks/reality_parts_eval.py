"""Which of the held-out reality's changes a policy fails on: each run at nominal physics, with every hidden
change, and with each change or pair of changes alone.

python docs/benchmarks/reality_parts_eval.py OUT.json RUN [RUN ...]

For every run: its ``best`` checkpoint over 1,000 episodes (1,000 envs, seed 0, ``mujoco``) per setting, the
settings' changes pinned (``worldloop.sim2real.reality.HIDDEN_CHANGES``: cube mass x1.6, cube friction x0.6,
arm kp x0.8, one control step of latency) and every other randomization term at its nominal value. Writes
``{run_dir_name: {setting: stats}}``.
"""

import json
import sys
import time

from worldloop.envs.loop import run_episodes
from worldloop.policies.train import inference_policy
from worldloop.sim2real.common import episode_stats, run_terms
from worldloop.sim2real.rank import Setting, setting_env
from worldloop.sim2real.reality import FRANKA_PARAMS, HIDDEN_CHANGES

SETTINGS = {
    "nominal": [],
    "reality": list(HIDDEN_CHANGES),
    "friction": ["object_friction"],
    "mass": ["object_mass"],
    "friction+mass": ["object_friction", "object_mass"],
    "kp+latency": ["arm_kp", "latency"],
}

out, runs = sys.argv[1], sys.argv[2:]
res = {}
for run in runs:
    terms = {**run_terms(run), **FRANKA_PARAMS}
    row = {}
    for setting, names in SETTINGS.items():
        t0 = time.time()
        pins = {k: HIDDEN_CHANGES[k] for k in names}
        env, runner = setting_env(
            run, Setting(backend="mujoco", pins=pins), checkpoint="best", terms=terms, num_envs=1000, seed=0
        )
        env.reset(seed=0)
        row[setting] = episode_stats(run_episodes(env, inference_policy(runner, env.num_envs), 1000))
        env.close()
        s = row[setting]
        print(run, setting, s["success_rate"], s["success_ci95"], f"{time.time() - t0:.0f}s", flush=True)
    res[run.rstrip("/").split("/")[-1]] = row
with open(out, "w") as f:
    json.dump(res, f, indent=1, default=float)
