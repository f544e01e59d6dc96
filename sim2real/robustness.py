"""Robustness curves: success as one randomized parameter is swept inside and beyond its training range.

    result = robustness("runs/Franka-Lift-v0/<date_time>", points=9, episodes_per_point=200)
    norand = robustness("runs/Franka-Lift-v0/<date_time>_norand", terms_from="runs/Franka-Lift-v0/<date_time>")
    plot_robustness([result, norand], "robustness.png", labels=["with DR", "without DR"])

One batched env per term holds every sweep point: env ``i`` runs point ``i // envs_per_point``, its
value pinned with ``env.randomizer.set``. The span is the training range widened by ``widen`` range
widths on both sides (by the ratio ``hi / lo`` in log space for a ``log_uniform`` term) and stops at
the parameter's physical bound: ``>= 0`` kinds (friction, damping, ...) stop at the bound; ``> 0``
kinds (mass, inertia, size, stiffness) a tenth of the way from the bound to the range's low end;
``action_latency`` at 0 whole steps.

What is swept, by how a term draws:

- **Held terms** (model parameters, ``initial_pose``, ``action_latency``, ``obs_bias`` and noise
  terms held per episode or interval): the draw itself, pinned per env. A term of ``k`` columns (one
  per target or component) gets the same value in every column: ``joint_damping`` on seven joints is
  one factor.
- **Redrawn terms** (``mode="step"`` noise, ``push`` and ``impulse`` kicks): a pinned draw would be
  a constant offset or the same kick every time, not noise. Their **half-width** ``a`` is swept
  instead, from 0 (off) to ``(1 + 2 * widen)`` times the trained half-width: before every policy
  step each env's draws are replaced (``set``) by fresh ones of the term's distribution about the
  centre of its range with that env's half-width (``uniform``; ``gaussian`` with std ``a / 2``
  clipped to ``a``; a ``log_uniform`` range is drawn uniform), and the env applies them where it
  applies the term (after latency and with clipping for actions, at the interval timers for kicks).
  The training range reported is ``[0, trained half-width]``. The first observation of each
  evaluation round carries the env's previous draw.

The other terms of the env are pinned at their nominal value by default (``others="nominal"``: scale
1, add 0, the scene's value for ``abs``, no latency, no noise), so a curve shows one parameter's
effect; ``others="random"`` leaves them drawing as in training.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from worldloop.envs.backends.base import model_param
from worldloop.envs.loop import run_episodes
from worldloop.envs.randomization import KINDS, RandTerm
from worldloop.envs.randomization.model import BOUNDS
from worldloop.policies import run_dir
from worldloop.sim2real.common import (
    coerce_terms,
    episode_stats,
    jsonable,
    load_policy,
    nominal_draw,
    pin_nominal,
    run_terms,
    success_stats,
)

if TYPE_CHECKING:
    from worldloop.envs.batched_env import BatchedEnv
    from worldloop.envs.loop import Policy
    from worldloop.policies.runner import Runner

UNITS = {
    "body_mass": "kg",
    "body_com": "m",
    "body_inertia": "kg m^2",
    "geom_friction": "friction coefficient",
    "geom_size": "m",
    "dof_damping": "N m s/rad",
    "dof_armature": "kg m^2",
    "dof_frictionloss": "N m",
    "actuator_stiffness": "kp",
    "actuator_damping": "kv",
    "gravity": "m/s^2",
    "initial_pose": "m or rad",
    "push": "m/s or rad/s",
    "impulse": "N s",
    "obs_noise": "observation units",
    "obs_bias": "observation units",
    "action_noise": "action units",
    "action_latency": "control steps",
}
"""The units of each kind's physical value (a draw of ``op="scale"`` is a factor of it)."""


class NoRandomizationError(ValueError):
    """A run without randomization terms asked for robustness curves, with no terms given to sweep."""


def is_redrawn(term: RandTerm) -> bool:
    """Whether the term is drawn afresh at events (``mode="step"`` noise, ``push``/``impulse`` kicks), so
    its half-width is swept rather than a pinned value."""
    kind = KINDS[term.kind]
    return kind.group == "push" or (term.mode or kind.mode) == "step"


def sweep_values(
    training_range: tuple[float, float],
    *,
    points: int,
    widen: float,
    log: bool = False,
    lower: float | None = None,
    strict: bool = False,
    integer: bool = False,
) -> list[float]:
    """``points`` values spanning ``training_range`` widened by ``widen`` range widths on both sides
    (by ``(hi / lo) ** widen`` in log space if ``log``), cut at the physical bound ``lower``: at it if
    ``strict`` is false, else a tenth of the way from it to the range's low end. ``integer``: the
    distinct whole numbers >= 0 among them (``action_latency``).

    Raises:
        ValueError: ``points < 2`` or ``widen < 0``.
    """
    if points < 2 or widen < 0:
        raise ValueError(f"a sweep needs points >= 2 and widen >= 0, got points={points}, widen={widen}")
    lo, hi = (float(x) for x in training_range)
    if log and lo > 0:
        ratio = (hi / lo) ** widen
        a, b = lo / ratio, hi * ratio
    else:
        width = hi - lo if hi > lo else max(abs(lo), 1.0)
        a, b = lo - widen * width, hi + widen * width
    if lower is not None and (a <= lower if strict else a < lower):
        a = lower + 0.1 * (lo - lower) if strict else lower
    if log and lo > 0 and a > 0:
        values = torch.logspace(math.log10(a), math.log10(b), points, dtype=torch.float64)
    else:
        values = torch.linspace(a, b, points, dtype=torch.float64)
    if integer:
        return sorted({max(int(round(v)), 0) for v in values.tolist()})
    return [float(v) for v in values]


@dataclass
class Sweep:
    """One term's sweep points in one batched env: env ``i`` runs ``values[i // envs_per_point]``."""

    name: str
    term: RandTerm
    """The term as trained (or as given)."""
    quantity: Literal["value", "half_width"]
    """``value``: the draw is pinned; ``half_width``: fresh draws of that half-width every step."""
    values: list[float]
    """The sweep points, in draw units (a factor for ``op="scale"``, else :data:`UNITS`)."""
    envs_per_point: int
    env: BatchedEnv
    runner: Runner
    policy: Policy
    """The run's policy; for a ``half_width`` sweep it redraws the term before every step."""
    training_range: tuple[float, float]
    nominal: float
    """The value that leaves the scene as built (1 for scale, 0 for add, ...; 0 for a half-width)."""
    in_run_config: bool
    """Whether the run trained with this very term."""

    def point_of_env(self) -> torch.Tensor:
        """``(num_envs,)`` the sweep point each env runs."""
        return torch.arange(self.env.num_envs) // self.envs_per_point

    def close(self) -> None:
        """Close the env (its backend's resources)."""
        self.env.close()


def sweep_terms(
    run: str | Path,
    terms: Mapping[str, RandTerm | Mapping] | None = None,
    terms_from: str | Path | None = None,
) -> tuple[dict[str, RandTerm], dict[str, RandTerm]]:
    """``(swept, env_terms)``: the terms to sweep (``terms_from``'s and ``terms``, else the run's own)
    and every term the sweep env carries (the run's, overridden by the swept ones).

    Raises:
        NoRandomizationError: nothing to sweep: the run trained without randomization and no terms
            were given, or ``terms_from`` has none.
    """
    own = run_terms(run)
    given: dict[str, RandTerm] = {}
    if terms_from is not None:
        given.update(run_terms(terms_from))
        if not given:
            raise NoRandomizationError(
                f"terms_from={str(terms_from)!r} trained without randomization: its config.json has no "
                "env.randomization terms to sweep; name a run trained with randomization or pass terms="
            )
    given.update(coerce_terms(terms))
    if terms is not None and not given:
        raise NoRandomizationError(f"terms={{}} gives no term to sweep for {run}; name at least one, or leave it None")
    swept = given if (terms is not None or terms_from is not None) else own
    if not swept:
        raise NoRandomizationError(
            f"{run} trained without randomization (its config.json has no env.randomization terms), so there "
            "is no parameter or training range to sweep. Give the parameters: robustness(run, "
            "terms={'pole_mass': RandTerm(kind='body_mass', targets='pole', range=(0.8, 1.25))}) or "
            "terms_from=<a run of the same task trained with randomization>"
        )
    return swept, {**own, **swept}


def build_sweep(
    run: str | Path,
    name: str,
    *,
    terms: Mapping[str, RandTerm | Mapping] | None = None,
    terms_from: str | Path | None = None,
    checkpoint: str = "best",
    points: int = 9,
    widen: float = 1.0,
    envs_per_point: int = 100,
    others: Literal["nominal", "random"] = "nominal",
    backend: str | None = None,
    seed: int = 0,
    device: str | None = None,
) -> Sweep:
    """The env and policy of term ``name``'s sweep, its points pinned (see the module docstring).

    Args:
        run: the run directory whose policy is evaluated.
        name: the term to sweep, one of :func:`sweep_terms`'s.
        terms, terms_from: the terms to sweep instead of the run's own (:func:`sweep_terms`).
        checkpoint: ``best``, ``last``, ``model_<it>.pt`` or a path.
        points: sweep points (>= 2; fewer for ``action_latency`` if whole steps coincide).
        widen: range widths added on both sides of the training range.
        envs_per_point: envs running each point.
        others: ``nominal`` pins every other term at its nominal value; ``random`` leaves them drawing.
        backend: physics backend; default the run's training backend.
        seed: env seed.
        device: torch device; default the run's.

    Raises:
        NoRandomizationError: nothing to sweep (:func:`sweep_terms`).
        KeyError: ``name`` is not a term to sweep (the message lists them).
        ValueError: ``points < 2``, ``widen < 0`` or ``envs_per_point < 1``.
    """
    if envs_per_point < 1:
        raise ValueError(f"envs_per_point must be >= 1, got {envs_per_point}")
    if points < 2 or widen < 0:
        raise ValueError(f"a sweep needs points >= 2 and widen >= 0, got points={points}, widen={widen}")
    if others not in ("nominal", "random"):
        raise ValueError(f"others must be 'nominal' or 'random', got {others!r}")
    swept, env_terms = sweep_terms(run, terms, terms_from)
    if name not in swept:
        raise KeyError(f"no term {name!r} to sweep for {run}; terms: {sorted(swept)}")
    term = swept[name]
    own = run_terms(run)
    in_run_config = own.get(name) == term
    kind = KINDS[term.kind]
    redrawn = is_redrawn(term)
    lo, hi = term.range
    values: list[float] | None = None
    if kind.group == "latency":  # the delay buffer is sized by the term's range: widen it to the sweep
        values = sweep_values((lo, hi), points=points, widen=widen, lower=0.0, integer=True)
        env_terms = {**env_terms, name: dataclasses.replace(term, range=(0.0, float(max(values))), max_range=None)}
    n_points = points if values is None else len(values)
    env, runner, policy = load_policy(
        run,
        checkpoint=checkpoint,
        num_envs=n_points * envs_per_point,
        backend=backend or run_dir.read_backend(run),
        seed=seed,
        randomization=env_terms,
        device=device,
    )
    if in_run_config and term.max_range is not None and kind.group != "latency":
        lo, hi = env.randomizer.ranges()[name]  # the checkpoint's curriculum level
    if others == "nominal":
        pin_nominal(env, [n for n in env.randomizer.terms if n != name])
    point = torch.arange(env.num_envs, device=env.device) // envs_per_point
    if redrawn:
        half = 0.5 * (hi - lo)
        values = torch.linspace(0.0, half * (1 + 2 * widen), points, dtype=torch.float64).tolist()
        training_range, nominal = (0.0, half), 0.0
        widths = torch.as_tensor(values, dtype=torch.float32, device=env.device)[point]
        policy = Redraw(env, name, widths, centre=0.5 * (lo + hi), policy=policy, seed=seed)
        policy.redraw()
    else:
        if values is None:
            lower, strict = lower_bound(env, name)
            values = sweep_values((lo, hi), points=points, widen=widen, log=term.dist == "log_uniform",
                                  lower=lower, strict=strict)  # fmt: skip
        training_range, nominal = (lo, hi), float(nominal_draw(env, name).mean())
        env.randomizer.set(name, torch.as_tensor(values, dtype=torch.float32, device=env.device)[point][:, None])
    return Sweep(
        name=name,
        term=term,
        quantity="half_width" if redrawn else "value",
        values=[float(v) for v in values],
        envs_per_point=envs_per_point,
        env=env,
        runner=runner,
        policy=policy,
        training_range=(float(training_range[0]), float(training_range[1])),
        nominal=nominal,
        in_run_config=in_run_config,
    )


def lower_bound(env: BatchedEnv, name: str) -> tuple[float | None, bool]:
    """``(lower, strict)``: the smallest draw of term ``name`` its kind's physical bound allows
    (:data:`~worldloop.envs.randomization.model.BOUNDS`; for ``op="add"`` from the smallest scene value
    among its targets), and whether the bound is strict; ``(None, False)`` for an unbounded kind."""
    t = env.randomizer.terms[name]
    if t.kind.group == "latency":
        return 0.0, False
    if t.cfg.kind not in BOUNDS:
        return None, False
    rel, bound = BOUNDS[t.cfg.kind]
    if t.op == "scale":
        lower = 0.0
    elif t.op == "abs":
        lower = bound
    else:
        nominal = torch.as_tensor(model_param(env.mj_model, t.field), dtype=torch.float64).flatten()
        lower = bound - float((t.sign * nominal[t.write.cpu()]).min())
    return lower, rel == ">"


class Redraw:
    """A policy wrapper that, before every step, replaces term ``name``'s draws by fresh ones with a
    half-width per env: ``centre + a * (2u - 1)`` (``uniform``) or ``centre + clip(a / 2 * n, -a, a)``
    (``gaussian``), ``u ~ U[0, 1)``, ``n ~ N(0, 1)`` per column."""

    def __init__(
        self, env: BatchedEnv, name: str, half_widths: torch.Tensor, *, centre: float, policy: Policy, seed: int
    ) -> None:
        self.env, self.name, self.policy, self.centre = env, name, policy, centre
        self.half_widths = half_widths[:, None]
        """``(num_envs, 1)`` half-width of each env's draws, in draw units."""
        self.term = env.randomizer.terms[name]
        self.generator = torch.Generator(device=env.device).manual_seed(seed + 0x5EEB)

    def redraw(self) -> None:
        """New draws ``(num_envs, k)`` for the term, pinned until the next call."""
        t, n = self.term, self.env.num_envs
        with torch.inference_mode(False):
            if t.cfg.dist == "gaussian":
                z = torch.randn(n, t.k, generator=self.generator, device=self.env.device)
                d = torch.maximum(torch.minimum(0.5 * self.half_widths * z, self.half_widths), -self.half_widths)
            else:
                u = torch.rand(n, t.k, generator=self.generator, device=self.env.device)
                d = self.half_widths * (2 * u - 1)
            self.env.randomizer.set(self.name, self.centre + d)

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        self.redraw()
        return self.policy(obs)


def robustness(
    run: str | Path,
    *,
    terms: Mapping[str, RandTerm | Mapping] | None = None,
    terms_from: str | Path | None = None,
    names: Sequence[str] | None = None,
    checkpoint: str = "best",
    points: int = 9,
    widen: float = 1.0,
    episodes_per_point: int = 100,
    envs_per_point: int | None = None,
    others: Literal["nominal", "random"] = "nominal",
    backend: str | None = None,
    seed: int = 0,
    device: str | None = None,
) -> dict:
    """Robustness curves of ``run``'s policy: success per sweep point of each term (module docstring).

    Args:
        run: a run directory (``runs/<task>/<date_time>``).
        terms: terms to sweep (``{name: RandTerm or its config.json dict}``) instead of the run's own,
            e.g. to sweep a run trained without randomization over another run's parameters.
        terms_from: a run directory whose randomization terms to sweep (``terms`` override them).
        names: the terms to sweep (default all).
        checkpoint: ``best``, ``last``, ``model_<it>.pt`` or a path.
        points: sweep points per term (>= 2).
        widen: training range widths added on each side (half-widths: up to ``1 + 2 * widen`` times).
        episodes_per_point: episodes per point (rounded up to whole rounds of ``envs_per_point``).
        envs_per_point: envs per point; default ``min(episodes_per_point, 2048 // points)``.
        others: ``nominal`` pins the other terms at their nominal value; ``random`` leaves them drawing.
        backend: physics backend; default the run's training backend.
        seed: env seed (the same for every term).
        device: torch device; default the run's.

    Returns:
        ``{"run", "task", "checkpoint", "backend", "seed", "others", "widen", "episodes_per_point",
        "envs_per_point", "terms": {name: {...}}, "seconds"}``; each term: ``kind``, ``op``, ``targets``
        (str or None), ``columns`` [str], ``quantity`` (``value`` or ``half_width``), ``unit`` (of the
        values: ``x nominal`` for a scale factor, else :data:`UNITS`), ``values`` [float], ``spacing``
        (``log`` for a ``log_uniform`` term's geometric points, else ``linear``),
        ``training_range`` [lo, hi], ``nominal`` float, ``in_run_config`` bool, per point lists
        ``episodes`` [int], ``success_rate`` [float], ``success_ci95`` [[lo, hi]] (Wilson),
        ``mean_return`` [float], ``return_ci95`` [[lo, hi]]; ``physical`` (model kinds: per point the
        parameter at each target, in ``physical_unit``; else None), ``in_range`` and ``out_of_range``
        (pooled ``{episodes, successes, success_rate, success_ci95}`` of the points inside / outside
        the training range, or None), ``out_of_range_drop`` (in minus out, or None), ``seconds``.

    Raises:
        NoRandomizationError: the run has no randomization terms and none were given (the message
            says how to give them).
        KeyError: a name in ``names`` that is no term to sweep.
        ValueError: ``points < 2``, ``widen < 0``, ``episodes_per_point`` or ``envs_per_point`` below 1.
    """
    t_start = time.perf_counter()
    if episodes_per_point < 1 or (envs_per_point is not None and envs_per_point < 1):
        raise ValueError(
            f"episodes_per_point and envs_per_point must be >= 1, got {episodes_per_point} and {envs_per_point}"
        )
    if points < 2 or widen < 0:
        raise ValueError(f"a sweep needs points >= 2 and widen >= 0, got points={points}, widen={widen}")
    swept, _ = sweep_terms(run, terms, terms_from)
    names = list(swept) if names is None else list(names)
    unknown = [n for n in names if n not in swept]
    if unknown:
        raise KeyError(f"no term(s) {unknown} to sweep for {run}; terms: {sorted(swept)}")
    per = envs_per_point or min(episodes_per_point, max(1, 2048 // points))
    rounds = math.ceil(episodes_per_point / per)
    out_terms = {}
    resolved_backend = backend or run_dir.read_backend(run)
    for name in names:
        t0 = time.perf_counter()
        sweep = build_sweep(
            run, name, terms=terms, terms_from=terms_from, checkpoint=checkpoint, points=points, widen=widen,
            envs_per_point=per, others=others, backend=resolved_backend, seed=seed, device=device,
        )  # fmt: skip
        out_terms[name] = _measure(sweep, rounds)
        out_terms[name]["seconds"] = round(time.perf_counter() - t0, 1)
        sweep.close()
    return jsonable(
        {
            "run": str(run),
            "task": run_dir.read_config(run).task,
            "checkpoint": checkpoint,
            "backend": resolved_backend,
            "seed": seed,
            "others": others,
            "widen": widen,
            "episodes_per_point": rounds * per,
            "envs_per_point": per,
            "terms": out_terms,
            "seconds": round(time.perf_counter() - t_start, 1),
        }
    )


def _measure(sweep: Sweep, rounds: int) -> dict:
    env, t = sweep.env, sweep.env.randomizer.terms[sweep.name]
    point = sweep.point_of_env()
    physical = None
    if t.kind.group == "model":
        phys = env.randomizer.physical(sweep.name).double().cpu()
        physical = [phys[point == i].mean(0).tolist() for i in range(len(sweep.values))]
    eps = run_episodes(env, sweep.policy, rounds * env.num_envs)
    stats = [episode_stats(eps, point == i) for i in range(len(sweep.values))]
    lo, hi = sweep.training_range
    tol = 1e-9 * max(1.0, abs(lo), abs(hi))
    inside = [lo - tol <= v <= hi + tol for v in sweep.values]
    pooled = {}
    for key, want in (("in_range", True), ("out_of_range", False)):
        groups = [i for i, x in enumerate(inside) if x == want]
        mask = torch.isin(point, torch.as_tensor(groups, dtype=torch.long))
        pooled[key] = success_stats(eps.success[mask[eps.env_ids]]) if groups else None
    drop = None
    if pooled["in_range"] and pooled["out_of_range"]:
        drop = pooled["in_range"]["success_rate"] - pooled["out_of_range"]["success_rate"]
    cfg = sweep.term
    unit = UNITS[cfg.kind]
    log_spaced = sweep.quantity == "value" and cfg.dist == "log_uniform" and sweep.values[0] > 0
    return {
        "kind": cfg.kind,
        "op": t.op,
        "mode": t.mode,
        "targets": cfg.targets,
        "columns": env.randomizer.columns(sweep.name),
        "quantity": sweep.quantity,
        "unit": "x nominal" if t.op == "scale" else unit,
        "values": sweep.values,
        "spacing": "log" if log_spaced else "linear",
        "training_range": list(sweep.training_range),
        "nominal": sweep.nominal,
        "in_run_config": sweep.in_run_config,
        "episodes": [s["episodes"] for s in stats],
        "success_rate": [s["success_rate"] for s in stats],
        "success_ci95": [list(s["success_ci95"]) for s in stats],
        "mean_return": [s["mean_return"] for s in stats],
        "return_ci95": [list(s["return_ci95"]) for s in stats],
        "physical": physical,
        "physical_unit": unit if physical is not None else None,
        **pooled,
        "out_of_range_drop": drop,
    }


def plot_robustness(
    results: Mapping | Sequence[Mapping], path: str | Path, *, labels: Sequence[str] | None = None
) -> Path:
    """Success rate [%] against each term's value, one subplot per term, with the 95% Wilson band, the
    training range shaded and the nominal value dashed; several results (e.g. a run trained with and one
    without randomization, swept over the same terms) are drawn over each other, named by ``labels``."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [results] if isinstance(results, Mapping) else list(results)
    labels = list(labels) if labels is not None else [Path(r["run"]).name for r in results]
    names = list(dict.fromkeys(n for r in results for n in r["terms"]))
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        first = next(r["terms"][name] for r in results if name in r["terms"])
        lo, hi = first["training_range"]
        ax.axvspan(lo, hi, color="0.85", label="training range")
        ax.axvline(first["nominal"], color="0.3", ls="--", lw=1, label="nominal")
        for i, (r, label) in enumerate(zip(results, labels, strict=True)):
            term = r["terms"].get(name)
            if term is None:
                continue
            x = term["values"]
            y = [100 * s for s in term["success_rate"]]
            band_lo = [100 * c[0] for c in term["success_ci95"]]
            band_hi = [100 * c[1] for c in term["success_ci95"]]
            color = f"C{i}"
            ax.plot(x, y, "o-", color=color, label=label)
            ax.fill_between(x, band_lo, band_hi, color=color, alpha=0.2)
        if first.get("spacing") == "log":
            ax.set_xscale("log")
            ticks = first["values"][:: -(-len(first["values"]) // 5)]  # at most 5 sweep points, plainly written
            ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
            ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"{v:.3g}" for v in ticks]))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        what = "half-width" if first["quantity"] == "half_width" else "value"
        ax.set_xlabel(f"{what} [{first['unit']}]")
        ax.set_ylabel("success rate [%] (95% CI)")
        ax.set_ylim(-3, 103)
        target = f" on {first['targets']}" if first["targets"] else ""
        ax.set_title(f"{name}: {first['kind']}{target}", fontsize=10)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8, loc="best")
    r0 = results[0]
    fig.suptitle(
        f"{r0['task']}: robustness ({r0['episodes_per_point']} episodes per point, other terms {r0['others']})"
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
