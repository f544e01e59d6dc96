"""System identification on held-out reality logs: which logs and which parameters.

    python docs/benchmarks/sim2real_sysid_ablation.py REALITY_DIR LOGS PARAMS [GENERATIONS]

REALITY_DIR holds the reality datasets ``worldloop sim2real --reality-tasks ...`` wrote (its
``reality/`` folder); LOGS is a comma-separated list of them (``Franka-Push-v0``,
``Franka-Push-v0_flick``, ...), PARAMS of ``worldloop.sim2real.reality.FRANKA_PARAMS`` names.
"""

import json
import sys

from worldloop.sim2real.logs import read_logs
from worldloop.sim2real.reality import FRANKA_PARAMS
from worldloop.sim2real.sysid import SysIdCfg, identify
from worldloop.tasks import make

root, names, params = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
logs = {}
for name in names:
    env = make(name.split("_")[0], num_envs=1)
    logs[name] = read_logs(f"{root}/{name}", env)
    logs[name].task = env.task_id
    env.close()
gens = int(sys.argv[4]) if len(sys.argv) > 4 else 12
fit = identify(logs, {k: FRANKA_PARAMS[k] for k in params}, SysIdCfg(popsize=16, generations=gens))
print(json.dumps({k: getattr(fit, k) for k in ("values", "std", "loss_nominal", "loss_fit", "seconds")}))
