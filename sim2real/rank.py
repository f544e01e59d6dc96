"""Ranking fidelity: does a simulator rank a run's checkpoints as a reference ("reality") does?

    result = rank_fidelity("runs/Franka-Lift-v0/<date_time>", reference={"pins": {"object_mass": 1.6}})
    result = rank_fidelity(run, sim="mujoco", reference="newton")        # sim-to-sim as the reference
    plot_rank(result, "rank.png")

Every checkpoint is evaluated in two settings, each a physics backend and randomization terms pinned
at chosen values (a held-out "reality"); the fidelity is Pearson's r and the Mean Maximum Rank
Violation (MMRV) between the two success rates, the metrics of SIMPLER (Li et al. 2024, "Evaluating
Real-World Robot Manipulation Policies in Simulation", arXiv:2405.05941), whose published real-vs-sim
values span r 0.57-1.0 and MMRV 0-0.12.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from worldloop.envs.loop import run_episodes
from worldloop.envs.randomization import RandTerm
from worldloop.policies import run_dir
from worldloop.policies.train import inference_policy
from worldloop.sim2real.common import coerce_terms, episode_stats, jsonable, load_policy, pin_nominal, run_terms

MIN_CHECKPOINTS = 6
"""Fewest checkpoints :func:`rank_fidelity` accepts by default: r and MMRV over fewer policies say little."""


class TooFewCheckpointsError(ValueError):
    """Fewer checkpoints than a rank correlation needs to mean something."""


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson's correlation coefficient r in [-1, 1] of two equally long sequences (n >= 2); ``nan``
    if either is constant (r is undefined; SIMPLER's ``pearson_correlation`` returns 0 there, or 1 if
    both are the same constant).

    Raises:
        ValueError: lengths differ or are below 2.
    """
    x, y = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if x.shape != y.shape or x.dim() != 1 or x.numel() < 2:
        raise ValueError(f"pearson needs two sequences of the same length >= 2, got {len(a)} and {len(b)}")
    if bool(x.max() == x.min()) or bool(y.max() == y.min()):
        return math.nan
    x, y = x / x.abs().max(), y / y.abs().max()  # scale-free: no underflow of tiny values' squares
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float(x @ x) * float(y @ y))
    return max(-1.0, min(1.0, float(x @ y) / den)) if den > 0 else math.nan


def mmrv(reference: Sequence[float], sim: Sequence[float]) -> float:
    """Mean Maximum Rank Violation of ``sim``'s ordering of N policies against ``reference``'s.

    ``MMRV = (1/N) sum_i max_j |R_i - R_j| * 1[(S_i > S_j) != (R_i > R_j)]`` with ``R`` the reference
    and ``S`` the sim performance (e.g. success rates): each policy's worst mis-ordering, weighted by
    how far apart the reference puts the pair, averaged. 0 when the orders agree; in the units of
    ``reference``, at most its range. The comparisons are strict, as in SIMPLER's implementation
    (``simpler_env/utils/metrics.py``, ``mean_maximum_rank_violation``; Li et al. 2024,
    arXiv:2405.05941): a tie in one setting against a strict order in the other is a violation.

    Raises:
        ValueError: lengths differ or are 0.
    """
    r, s = torch.as_tensor(reference, dtype=torch.float64), torch.as_tensor(sim, dtype=torch.float64)
    if r.shape != s.shape or r.dim() != 1 or r.numel() == 0:
        raise ValueError(f"mmrv needs two non-empty sequences of the same length, got {len(reference)} and {len(sim)}")
    violated = (s[:, None] > s[None, :]) != (r[:, None] > r[None, :])
    return float(((r[:, None] - r[None, :]).abs() * violated).max(dim=1).values.mean())


@dataclass(kw_only=True)
class Setting:
    """Where checkpoints are evaluated: a backend and pinned randomization terms."""

    backend: str | None = None
    """Physics backend; default the run's training backend."""
    pins: dict[str, float | list[float]] = field(default_factory=dict)
    """``{term: value}`` pinned in every env, a value per column or one for all (draw units: a factor
    for ``op="scale"``); terms of the run or of ``rank_fidelity(terms=...)``. A pinned noise term is a
    constant offset."""
    others: Literal["nominal", "random"] = "nominal"
    """The terms not pinned: at their nominal value, or drawn as in training."""

    def label(self, default_backend: str) -> str:
        pins = ", ".join(f"{k}={v}" for k, v in self.pins.items())
        return f"{self.backend or default_backend}" + (f" ({pins})" if pins else "") + f", others {self.others}"


def as_setting(x: Setting | str | Mapping | None, what: str) -> Setting:
    """A :class:`Setting` from itself, a backend name, or a dict of its fields (``None``: the default).

    Raises:
        ValueError: a dict key that is no field of :class:`Setting`, or another type.
    """
    if x is None:
        return Setting()
    if isinstance(x, Setting):
        return x
    if isinstance(x, str):
        return Setting(backend=x)
    if isinstance(x, Mapping):
        fields = [f.name for f in dataclasses.fields(Setting)]
        unknown = sorted(set(x) - set(fields))
        if unknown:
            raise ValueError(f"{what}: no field(s) {unknown}; a setting has {fields}, e.g. {{'pins': {{'mass': 1.6}}}}")
        return Setting(**{k: dict(v) if k == "pins" else v for k, v in x.items()})
    raise ValueError(f"{what} must be a Setting, a backend name or a dict of Setting fields, got {type(x).__name__}")


def setting_env(
    run: str | Path,
    setting: Setting,
    *,
    checkpoint: str,
    terms: Mapping[str, RandTerm],
    num_envs: int,
    seed: int,
    device: str | None = None,
) -> tuple:
    """``run``'s env with randomization ``terms`` and its runner with ``checkpoint`` loaded, in ``setting``: its
    backend (default the run's training backend), its pins set in every env, the other terms nominal or drawn.
    Returns ``(env, runner)``."""
    env, runner, _ = load_policy(
        run, checkpoint=checkpoint, num_envs=num_envs, backend=setting.backend or run_dir.read_backend(run),
        seed=seed, randomization=terms, device=device,
    )  # fmt: skip
    if setting.others == "nominal":
        pin_nominal(env, [n for n in env.randomizer.terms if n not in setting.pins])
    for name, value in setting.pins.items():
        env.randomizer.set(name, torch.as_tensor(value, dtype=torch.float32))
    return env, runner


def run_checkpoints(run: str | Path) -> list[str]:
    """The ``model_<it>.pt`` files of a run, by iteration."""
    return [p.name for p in sorted(Path(run).glob("model_*.pt"), key=lambda p: int(p.stem.split("_")[1]))]


def rank_fidelity(
    run: str | Path,
    *,
    reference: Setting | str | Mapping,
    sim: Setting | str | Mapping | None = None,
    checkpoints: Sequence[str] | None = None,
    terms: Mapping[str, RandTerm | Mapping] | None = None,
    episodes: int = 200,
    num_envs: int | None = None,
    seed: int = 0,
    min_checkpoints: int = MIN_CHECKPOINTS,
    device: str | None = None,
) -> dict:
    """Success of every checkpoint in the ``sim`` and ``reference`` settings, Pearson r and MMRV.

    Each setting's env is built once and each checkpoint loaded into it; the env is reseeded before
    every evaluation, so all checkpoints meet the same initial states (common random numbers).

    Args:
        run: a run directory.
        reference: the setting standing for reality: a :class:`Setting`, a backend name (``"newton"``)
            or a dict of its fields (``{"pins": {"object_mass": 1.6}}``).
        sim: the simulator setting; default :class:`Setting` (the training backend, terms nominal).
        checkpoints: checkpoint names in the run or paths; default every ``model_<it>.pt`` of the run.
        terms: randomization terms added to the run's (``{name: RandTerm or dict}``), to pin in a setting.
        episodes: episodes per checkpoint and setting.
        num_envs: envs stepped together; default ``min(episodes, 1024)``.
        seed: env seed.
        min_checkpoints: fewest checkpoints accepted (>= 2); r and MMRV over few points are mostly noise.
        device: torch device; default the run's.

    Returns:
        ``{"run", "task", "seed", "episodes", "sim": {"label", "backend", "pins", "others"},
        "reference": {same}, "checkpoints": [{"checkpoint": str, "iteration": int, "sim": stats,
        "reference": stats}], "pearson_r": float or None (undefined: a constant success list),
        "mmrv": float, "seconds": float}``; ``stats``: ``episodes`` int, ``successes`` int,
        ``success_rate`` float in [0, 1], ``success_ci95`` [lo, hi] (Wilson), ``mean_return`` float,
        ``return_ci95`` [lo, hi] or None.

    Raises:
        TooFewCheckpointsError: fewer than ``min_checkpoints`` checkpoints (the message says how to get more).
        ValueError: a pinned term the env does not have (the message lists them), a bad setting, or
            ``episodes < 1``.
    """
    t_start = time.perf_counter()
    run = Path(run)
    if min_checkpoints < 2:
        raise ValueError(f"min_checkpoints must be >= 2 (a ranking needs two policies), got {min_checkpoints}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    names = run_checkpoints(run) if checkpoints is None else [str(c) for c in checkpoints]
    if len(names) < min_checkpoints:
        raise TooFewCheckpointsError(
            f"ranking fidelity needs at least {min_checkpoints} checkpoints, got {len(names)} ({names}) from {run}: "
            "Pearson r and MMRV over fewer policies say little. Train with a smaller --save-interval, pass "
            "checkpoints= (paths of same-task runs work too), or lower min_checkpoints for a smoke test"
        )
    trained = run_dir.read_backend(run)
    settings = {"sim": as_setting(sim, "sim"), "reference": as_setting(reference, "reference")}
    env_terms = {**run_terms(run), **coerce_terms(terms)}
    n_env = num_envs or min(episodes, 1024)
    for key, s in settings.items():
        missing = sorted(set(s.pins) - set(env_terms))
        if missing:
            raise ValueError(
                f"{key} pins term(s) {missing} that the env does not have; terms: {sorted(env_terms)}. "
                "Add a term with rank_fidelity(terms={name: RandTerm(...)})"
            )
    envs = {
        key: setting_env(run, s, checkpoint=names[0], terms=env_terms, num_envs=n_env, seed=seed, device=device)
        for key, s in settings.items()
    }
    rows = []
    for name in names:
        row: dict = {"checkpoint": name}
        for key, (env, runner) in envs.items():
            runner.load(str(run_dir.find_checkpoint(run, name)))
            row["iteration"] = runner.current_learning_iteration - 1
            env.reset(seed=seed)
            row[key] = episode_stats(run_episodes(env, inference_policy(runner, env.num_envs), episodes))
        rows.append(row)
    for env, _ in envs.values():
        env.close()
    sim_rate = [r["sim"]["success_rate"] for r in rows]
    ref_rate = [r["reference"]["success_rate"] for r in rows]
    return jsonable(
        {
            "run": str(run),
            "task": run_dir.read_config(run).task,
            "seed": seed,
            "episodes": episodes,
            **{
                key: {"label": s.label(trained), "backend": s.backend or trained, "pins": s.pins, "others": s.others}
                for key, s in settings.items()
            },
            "checkpoints": rows,
            "pearson_r": pearson(ref_rate, sim_rate),
            "mmrv": mmrv(ref_rate, sim_rate),
            "seconds": round(time.perf_counter() - t_start, 1),
        }
    )


def plot_rank(result: Mapping, path: str | Path) -> Path:
    """Sim against reference success rate [%] per checkpoint (95% Wilson bars, labelled with the training
    iteration), the diagonal of perfect agreement, r and MMRV in the title (a PNG at ``path``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["checkpoints"]
    fig, ax = plt.subplots(figsize=(6, 5.6))
    ax.plot([0, 100], [0, 100], color="0.6", ls="--", lw=1, label="sim = reference")
    for i, r in enumerate(rows):
        x, y = 100 * r["sim"]["success_rate"], 100 * r["reference"]["success_rate"]
        # max(0, ...): a Wilson bound equal to the rate can land a rounding error on the wrong side of it
        xerr = [[max(0.0, x - 100 * r["sim"]["success_ci95"][0])], [max(0.0, 100 * r["sim"]["success_ci95"][1] - x)]]
        yerr = [[max(0.0, y - 100 * r["reference"]["success_ci95"][0])],
                [max(0.0, 100 * r["reference"]["success_ci95"][1] - y)]]  # fmt: skip
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", color="C0", ecolor="C0", alpha=0.8, capsize=3)
        below = i % 2  # alternate sides: neighbouring checkpoints often land close together
        ax.annotate(f"it {r['iteration']}", (x, y), xytext=(6, -11 if below else 4), textcoords="offset points",
                    fontsize=8)  # fmt: skip
    ax.set_xlim(-3, 103)
    ax.set_ylim(-3, 103)
    ax.set_aspect("equal")
    ax.set_xlabel(f"sim success rate [%]\n{result['sim']['label']}", fontsize=9)
    ax.set_ylabel(f"reference success rate [%]\n{result['reference']['label']}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    r_text = "undefined" if result["pearson_r"] is None else f"{result['pearson_r']:.2f}"
    ax.set_title(
        f"{result['task']}: ranking of {len(rows)} checkpoints\nPearson r = {r_text}, MMRV = {result['mmrv']:.3f} "
        f"({result['episodes']} episodes each)",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
