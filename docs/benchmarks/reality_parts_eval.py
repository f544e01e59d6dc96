"""Which of the held-out reality's changes a policy fails on: each run at nominal physics, with every hidden
change, and with each change or pair of changes alone.

python docs/benchmarks/reality_parts_eval.py OUT.json RUN [RUN ...] [--checkpoint best|last|model_<it>.pt]

For every run: the named checkpoint over 1,000 episodes (1,000 envs, seed 0, ``mujoco``) per setting, the
settings' changes pinned (``worldloop.sim2real.reality.HIDDEN_CHANGES``: cube mass x1.6, cube friction x0.6,
arm kp x0.8, one control step of latency) and every other randomization term at its nominal value. Writes
``{run_dir_name: {setting: stats}}``. The default checkpoint is ``last``: ``best`` is chosen by training success
under the run's own randomization, so runs trained with different terms would be compared at different iterations.
"""

import argparse
import json
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

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("out")
parser.add_argument("runs", nargs="+")
parser.add_argument("--checkpoint", default="last")
args = parser.parse_args()
out, runs = args.out, args.runs
res = {}
for run in runs:
    terms = {**run_terms(run), **FRANKA_PARAMS}
    row = {}
    for setting, names in SETTINGS.items():
        t0 = time.time()
        pins = {k: HIDDEN_CHANGES[k] for k in names}
        env, runner = setting_env(
            run, Setting(backend="mujoco", pins=pins), checkpoint=args.checkpoint, terms=terms, num_envs=1000, seed=0
        )
        env.reset(seed=0)
        row[setting] = episode_stats(run_episodes(env, inference_policy(runner, env.num_envs), 1000))
        env.close()
        s = row[setting]
        print(run, setting, s["success_rate"], s["success_ci95"], f"{time.time() - t0:.0f}s", flush=True)
    res[run.rstrip("/").split("/")[-1]] = row
with open(out, "w") as f:
    json.dump(res, f, indent=1, default=float)
