"""With vs without randomization over several training seeds: the drops per run, pooled per arm, and
the difference of the arms with a 95% interval.

python docs/benchmarks/dr_seed_summary.py OUT_DIR --arm dr=dr_s0,dr_s1 --arm none=none_s0,none_s1

``OUT_DIR`` holds the ``transfer_<label>.json`` and ``robustness_<label>.json`` files that
``docs/benchmarks/sim2real_dr_compare.py`` writes (labels are run directory names). For every run:
the cross-backend drop (training backend's success minus ``newton``'s, nominal physics) and each swept
term's out-of-range drop (success at the sweep points inside the training range minus outside it).
Per arm, the drops of its runs' pooled episodes. The interval of "none minus randomized" (> 0: the
randomized arm drops less) is a two-level bootstrap (Davison & Hinkley 1997, sec. 3.8): resample the
arm's seeds with replacement, then each resampled run's successes per point from a binomial at its
measured rate, 20,000 times. With two seeds per arm the seed level can only resample what two seeds
show, so the interval covers the episode noise and the spread of those seeds, not seeds never run.

``--reality FILE`` adds a quantity "held-out reality": success at nominal physics minus success with
``worldloop.sim2real.reality.HIDDEN_CHANGES`` pinned, from a JSON ``{label: {"nominal": stats, "reality":
stats}}`` of ``successes``/``episodes`` per run (not one of the terms, so not in their mean).
"""

import argparse
import json
from pathlib import Path

import numpy as np

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("out", type=Path, help="the output directory of sim2real_dr_compare.py")
parser.add_argument("--arm", action="append", required=True, help="NAME=LABEL,LABEL,...; give exactly two arms")
parser.add_argument("--backend", default="newton", help="the backend the cross-backend drop is measured on")
parser.add_argument("--reality", type=Path, help="JSON of each run's success at nominal and held-out physics")
parser.add_argument("--samples", type=int, default=20_000)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
arms = dict(a.split("=", 1) for a in args.arm)
if len(arms) != 2:
    parser.error(f"give exactly two --arm NAME=LABELS, got {list(arms)}")
arms = {k: v.split(",") for k, v in arms.items()}
rng = np.random.default_rng(args.seed)
reality = None if args.reality is None else json.loads(args.reality.read_text())


def counts(label: str) -> dict[str, np.ndarray]:
    """Per quantity, ``(groups, 2)`` [successes, episodes]: cross-backend (training backend, other);
    per term (in range, out of range), summed over the sweep's points."""
    tr = json.loads((args.out / f"transfer_{label}.json").read_text())
    ref = tr["backends"][tr["training_backend"]]
    other = tr["backends"][args.backend]
    out = {"cross-backend": np.array([[ref["successes"], ref["episodes"]], [other["successes"], other["episodes"]]])}
    rb = json.loads((args.out / f"robustness_{label}.json").read_text())
    for name, t in rb["terms"].items():
        out[name] = np.array([[t[k]["successes"], t[k]["episodes"]] for k in ("in_range", "out_of_range")])
    if reality is not None:
        r = reality[label]
        out["held-out reality"] = np.array([[r[k]["successes"], r[k]["episodes"]] for k in ("nominal", "reality")])
    return out


def drop(c: np.ndarray) -> float:
    return c[0, 0] / c[0, 1] - c[1, 0] / c[1, 1]


data = {arm: {label: counts(label) for label in labels} for arm, labels in arms.items()}
quantities = list(next(iter(next(iter(data.values())).values())))


def resample(arm: str) -> dict[str, np.ndarray]:
    """One bootstrap draw of the arm's pooled counts: seeds with replacement, then binomial successes."""
    labels = arms[arm]
    picked = rng.choice(len(labels), size=len(labels), replace=True)
    pooled = {}
    for q in quantities:
        c = np.zeros((2, 2))
        for i in picked:
            s, n = data[arm][labels[i]][q].T
            c[:, 0] += rng.binomial(n, s / n)
            c[:, 1] += n
        pooled[q] = c
    return pooled


rows = []
for arm, runs in data.items():
    for label, c in runs.items():
        rows.append((arm, label, {q: drop(c[q]) for q in quantities}))
    pooled = {q: sum(c[q] for c in runs.values()) for q in quantities}
    rows.append((arm, "pooled", {q: drop(pooled[q]) for q in quantities}))
names = list(arms)
point = {}
for q in quantities:
    point[q] = next(r[2][q] for r in rows if r[0] == names[1] and r[1] == "pooled") - next(
        r[2][q] for r in rows if r[0] == names[0] and r[1] == "pooled"
    )
terms = [q for q in quantities if q not in ("cross-backend", "held-out reality")]
point["mean of the terms"] = float(np.mean([point[q] for q in terms]))
boot = {q: np.empty(args.samples) for q in [*quantities, "mean of the terms"]}
for b in range(args.samples):
    a, z = resample(names[0]), resample(names[1])
    for q in quantities:
        boot[q][b] = drop(z[q]) - drop(a[q])
    boot["mean of the terms"][b] = np.mean([boot[q][b] for q in terms])
for _, _, d in rows:
    d["mean of the terms"] = float(np.mean([d[q] for q in terms]))

header = ["arm", "run", *quantities, "mean of the terms"]
print("Drops in percentage points (> 0: worse off the training setting)\n")
print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
for arm, label, d in rows:
    print(f"| {arm} | {label} | " + " | ".join(f"{100 * d[q]:.1f}" for q in header[2:]) + " |")
print(f"\n{names[1]} minus {names[0]} (> 0: {names[0]} drops less), 95% two-level bootstrap, {args.samples} samples:\n")
print("| quantity | difference | 95% interval |\n|---|---:|---|")
summary = {}
for q in header[2:]:
    lo, hi = np.percentile(boot[q], [2.5, 97.5])
    summary[q] = {"difference": point[q], "ci95": [float(lo), float(hi)]}
    print(f"| {q} | {100 * point[q]:+.1f} | {100 * lo:+.1f} to {100 * hi:+.1f} |")
(args.out / "dr_seed_summary.json").write_text(
    json.dumps({"arms": arms, "runs": [{"arm": a, "run": r, "drops": d} for a, r, d in rows], "difference": summary},
               indent=1)  # fmt: skip
)
