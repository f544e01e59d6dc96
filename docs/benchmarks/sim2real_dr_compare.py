"""With vs without randomization: cross-backend and out-of-range drop of two runs of one task.

python docs/benchmarks/sim2real_dr_compare.py RUN_WITH_DR RUN_WITHOUT_DR OUT_DIR
"""

import json
import sys
import time
from pathlib import Path

from worldloop.sim2real import plot_robustness, plot_transfer, robustness, transfer

DR = sys.argv[1]
NO = sys.argv[2]
out = Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)

for label, run in (("dr", DR), ("nodr", NO)):
    t0 = time.time()
    tr = transfer(run, backends=["mujoco", "newton"], episodes={"mujoco": 500, "newton": 200}, randomization="nominal")
    (out / f"transfer_{label}.json").write_text(json.dumps(tr, indent=1))
    plot_transfer(tr, out / f"transfer_{label}.png")
    print(
        label,
        "transfer",
        {b: (v["success_rate"], v["success_ci95"], v["success_drop"]) for b, v in tr["backends"].items()},
        f"{time.time() - t0:.0f}s",
        flush=True,
    )
rb = {}
for label, run in (("dr", DR), ("nodr", NO)):
    t0 = time.time()
    rb[label] = robustness(run, terms_from=DR, points=9, widen=3.0, episodes_per_point=100)
    (out / f"robustness_{label}.json").write_text(json.dumps(rb[label], indent=1))
    print(
        label,
        "robustness",
        {
            k: (
                t["in_range"]["success_rate"] if t["in_range"] else None,
                t["out_of_range"]["success_rate"] if t["out_of_range"] else None,
                t["out_of_range_drop"],
            )
            for k, t in rb[label]["terms"].items()
        },
        f"{time.time() - t0:.0f}s",
        flush=True,
    )
plot_robustness(
    [rb["dr"], rb["nodr"]], out / "robustness_compare.png", labels=["trained with randomization", "trained without"]
)
