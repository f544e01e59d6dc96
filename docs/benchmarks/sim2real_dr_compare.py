"""With vs without randomization: cross-backend and out-of-range drop of runs of one task.

python docs/benchmarks/sim2real_dr_compare.py RUN_WITH_DR RUN_WITHOUT_DR OUT_DIR
python docs/benchmarks/sim2real_dr_compare.py RUN_A RUN_B [RUN_C ...] OUT_DIR

Every run is evaluated on ``mujoco`` (500 episodes) and ``newton`` (200) with nominal physics, then swept
over the randomization terms of the first run (9 points, 3 training-range widths beyond each side, 100
episodes per point, the other terms nominal). Labels are the run directories' names.
"""

import json
import sys
import time
from pathlib import Path

from worldloop.sim2real import plot_robustness, plot_transfer, robustness, transfer

*runs, out = sys.argv[1:]
if len(runs) < 2:
    sys.exit(__doc__)
out = Path(out)
out.mkdir(parents=True, exist_ok=True)
labels = [Path(r).name for r in runs]

for label, run in zip(labels, runs, strict=True):
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
rb = []
for label, run in zip(labels, runs, strict=True):
    t0 = time.time()
    rb.append(robustness(run, terms_from=runs[0], points=9, widen=3.0, episodes_per_point=100))
    (out / f"robustness_{label}.json").write_text(json.dumps(rb[-1], indent=1))
    print(label, "robustness", f"{time.time() - t0:.0f}s", flush=True)
    for name, t in rb[-1]["terms"].items():
        rates = [f"{100 * s:.0f}" for s in t["success_rate"]]
        values = [f"{v:.3g}" for v in t["values"]]
        print(f"  {name}: values {values}\n  {' ' * len(name)}  success % {rates}")
        print(
            f"  {' ' * len(name)}  in range {t['in_range'] and t['in_range']['success_rate']}, "
            f"out of range {t['out_of_range'] and t['out_of_range']['success_rate']}, drop {t['out_of_range_drop']}",
            flush=True,
        )
plot_robustness(rb, out / "robustness_compare.png", labels=labels)
