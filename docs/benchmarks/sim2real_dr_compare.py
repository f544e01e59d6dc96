"""With vs without randomization: cross-backend and out-of-range drop of runs of one task.

python docs/benchmarks/sim2real_dr_compare.py RUN_WITH_DR RUN_WITHOUT_DR OUT_DIR
python docs/benchmarks/sim2real_dr_compare.py RUN_A RUN_B [RUN_C ...] OUT_DIR [--newton-episodes 1000]

Every run is evaluated on ``mujoco`` and ``newton`` with nominal physics (500 and 200 episodes unless
told), then swept over the randomization terms of the first run (9 points, 3 training-range widths beyond
each side, 100 episodes per point, the other terms nominal). Labels are the run directories' names.
With ``--reuse``, a run whose ``transfer_<label>.json`` is already in OUT_DIR is not evaluated again.
"""

import argparse
import json
import time
from pathlib import Path

from worldloop.sim2real import plot_robustness, plot_transfer, robustness, transfer

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("paths", nargs="+", help="two or more run directories, then the output directory")
parser.add_argument("--mujoco-episodes", type=int, default=500)
parser.add_argument("--newton-episodes", type=int, default=200)
parser.add_argument("--episodes-per-point", type=int, default=100)
parser.add_argument("--terms", help="comma-separated names of the terms to sweep (default all of the first run's)")
parser.add_argument("--checkpoint", default="best", help="best, last or model_<it>.pt of every run (default best)")
parser.add_argument("--reuse", action="store_true", help="keep a run's transfer_<label>.json found in OUT_DIR")
args = parser.parse_args()
*runs, out = args.paths
if len(runs) < 2:
    parser.error("give at least two runs and an output directory")
out = Path(out)
out.mkdir(parents=True, exist_ok=True)
labels = [Path(r).name for r in runs]
episodes = {"mujoco": args.mujoco_episodes, "newton": args.newton_episodes}

for label, run in zip(labels, runs, strict=True):
    t0 = time.time()
    if args.reuse and (out / f"transfer_{label}.json").exists():
        print(label, "transfer kept from", out / f"transfer_{label}.json", flush=True)
        continue
    tr = transfer(
        run, checkpoint=args.checkpoint, backends=["mujoco", "newton"], episodes=episodes, randomization="nominal"
    )
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
names = args.terms.split(",") if args.terms else None
for label, run in zip(labels, runs, strict=True):
    t0 = time.time()
    rb.append(
        robustness(
            run,
            checkpoint=args.checkpoint,
            terms_from=runs[0],
            names=names,
            points=9,
            widen=3.0,
            episodes_per_point=args.episodes_per_point,
        )
    )
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
