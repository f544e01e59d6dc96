"""System identification: fit physical parameters so that replaying robot logs in sim matches them.

    logs = {"Franka-Lift-v0": read_logs("reality/lift", env_lift), "Franka-Push-v0": ...}
    fit = identify(logs)                  # CMA-ES, each candidate one env of a batch per episode
    fit.values, fit.std                   # {"object_mass": 1.58, ...} factors of the nominal value
    fit.preset()                          # a randomization preset centred on the fit

**Method.** The parameters are randomization terms
(:data:`~worldloop.sim2real.reality.FRANKA_PARAMS`: ``op="scale"`` factors of the nominal value
within search bounds, and ``action_latency`` in whole control steps), so a candidate is pinned into
its envs with ``env.randomizer.set`` and replayed with the task's own action processing (IK, rate
limits, gravity compensation) on either backend. The loss of a candidate is the mean over logged
frames of the squared scaled replay errors (:meth:`~worldloop.sim2real.tracking.Tracking.loss`:
joints, object positions, torques), summed over the log sets, each candidate's episodes averaged
without the worst ``trim`` of them: contact makes an open-loop replay chaotic (a grasp that holds in
the log may slip in a replay with the very same parameters, as a start state measured with noise
differs), and one such episode would otherwise outweigh the rest. Latency is discrete: it is chosen
first by replaying the nominal model at every latency; a softer servo lags like a step of delay, so
latencies within :data:`LATENCY_TIE` of the best are each tried with a short fit, and the choice is
checked again at the fit. The continuous parameters are fitted by CMA-ES (the ``cma`` package,
Hansen's reference implementation) over their logarithms, each generation's population replayed as
one batch of ``popsize x episodes`` envs: the approach of ETH's PACE (Bjelonic et al. 2025), which
fits actuator parameters with CMA-ES over thousands of parallel sim candidates. We chose it over
``mujoco.sysid``'s Gauss-Newton because a candidate must run through worldloop's env (the action
space's IK and rate limits and the latency buffer are not in the ``MjModel``), and contact-rich
replays make the loss non-smooth; CMA-ES needs no gradient and evaluates a whole population at once.

**Uncertainty.** Residuals of one trajectory are strongly correlated in time, so the textbook
Gauss-Newton covariance ``s^2 (J^T J)^-1`` is far too small. Episodes are the independent samples:
with the residual Jacobian ``J`` by central differences in log-parameters (``2P`` more candidates, one
batch), the fit without episode ``e`` is approximated by one Gauss-Newton step from the fit, and the
jackknife variance over those (Efron & Stein 1981) gives each factor's standard deviation (delta
method). It measures how much the episodes disagree, not the bias contact chaos and unfitted
parameters put into every episode alike: on the held-out reality of BENCHMARKS.md it was 0.0014 for a
friction factor 0.14 off. Read it as a lower bound, and the sensitivity (:attr:`SysIdResult.sensitivity`)
as how sharply the logs pin a parameter down.

**What logs can identify.** Kinematic logs (joints, object poses) see a parameter only through the
motion it changes. Friction shows where an object slides on its own (quasi-static pushing barely
depends on it; :class:`~worldloop.sim2real.reality.FlickProbe` makes such slides). A stiff position
servo hides a held object's weight: the sag it causes,
``m g L / kp`` (0.1 kg x 9.81 m/s^2 x 0.5 m / 3500 N m/rad = 0.14 mrad), is below encoder noise. Torque logs
carry the weight, but replayed torques are ``kp`` x a joint error, and contact makes open-loop
joint errors of a few mrad inevitable; so replayed torques are compared (``effort_scale``) only on
request. Instead, an object's mass (a ``body_mass`` term on one free body) is taken from the torques of
the frames where the arm holds it still (:mod:`~worldloop.sim2real.statics`, logs of
:class:`~worldloop.sim2real.reality.HoldProbe`), before and without any replay, and held fixed while the
rest is fitted: with the mass right, the friction the probes show is no longer pulled off by it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np
import torch

from worldloop.envs.batched_env import BatchedEnv
from worldloop.envs.randomization import RandTerm
from worldloop.envs.randomization.terms import coerce
from worldloop.sim2real.logs import LogError, RobotLogs
from worldloop.sim2real.reality import FRANKA_PARAMS
from worldloop.sim2real.statics import HeldMass, held_mass
from worldloop.sim2real.tracking import JOINT_SCALE, OBJECT_SCALE, Tracking, replay_logs
from worldloop.tasks import make

LATENCY_TIE = 1.25
"""Latencies whose nominal loss is within this factor of the best are each tried with a short fit."""
SENSITIVITY_FACTORS = (0.7, 1.4)
"""Factors of a fitted value at which :attr:`SysIdResult.sensitivity` evaluates the loss."""
IDENTIFIED_RISE = 0.05
"""A parameter counts as identified when those moves raise the loss by more than this fraction."""


@dataclass
class SysIdCfg:
    """Settings of :func:`identify`."""

    popsize: int = 16
    """CMA-ES candidates per generation (each replays every episode)."""
    generations: int = 30
    """CMA-ES generations (at most)."""
    sigma0: float = 0.3
    """Initial CMA-ES step in log-parameter space (0.3: factors of about x1.35)."""
    tolfun: float = 1e-4
    """Stop when the best losses of the recent generations differ by less than this."""
    fd_step: float = 0.02
    """Log-parameter step of the finite differences of the uncertainty estimate."""
    seed: int = 0
    """CMA-ES seed."""
    backend: str = "mujoco"
    """Backend the candidates are replayed on."""
    joint_scale: float = JOINT_SCALE
    """[rad] Joint error counted as one unit of loss."""
    object_scale: float = OBJECT_SCALE
    """[m] Object error counted as one unit of loss."""
    effort_scale: float = math.inf
    """[N m] Torque error counted as one unit of loss (``inf``, the default: torques not fitted, module
    docstring; e.g. ``EFFORT_SCALE`` = 0.5 to fit them)."""

    replay_masses: bool = False
    """Fit a ``body_mass`` term no log set holds still (no static-hold torques) by replaying the logs.
    Off by default: kinematic logs do not show a held object's weight (module docstring), and such a
    fit drifts and drags friction along; the term then stays at its nominal value, reported as not fitted."""
    trim: float = 0.25
    """Fraction of each candidate's episodes with the largest loss left out of its mean (module docstring)."""

    def scales(self) -> dict[str, float]:
        return {"joint_scale": self.joint_scale, "object_scale": self.object_scale, "effort_scale": self.effort_scale}


@dataclass
class SysIdResult:
    """What :func:`identify` found; values are factors of the nominal parameter (latency in steps)."""

    values: dict[str, float]
    std: dict[str, float]
    """Standard deviation of each fitted value (episode jackknife; latency: 0, it is exact or wrong)."""
    loss_nominal: float
    loss_fit: float
    latency_losses: dict[int, float]
    """Loss of the nominal model at each latency [steps] (how latency was chosen)."""
    history: list[float]
    """Best loss of each CMA-ES generation."""
    evaluations: int
    """Candidate replays (candidates x log sets)."""
    seconds: float
    params: dict[str, RandTerm] = field(default_factory=dict)
    sensitivity: dict[str, list[float]] = field(default_factory=dict)
    """Relative loss increase with one factor moved to each of :data:`SENSITIVITY_FACTORS` x its fit."""
    unfitted: dict[str, str] = field(default_factory=dict)
    """Parameters left at their nominal value, with the reason (``SysIdCfg.replay_masses``)."""
    static: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Parameters found from static holds instead of replays (:mod:`~worldloop.sim2real.statics`):
    ``{name: {"log": log set, "frames", "episodes", "residual_rms" [N m]}}``."""

    def identified(self, name: str) -> bool:
        """Whether moving the factor by ``SENSITIVITY_FACTORS`` raises the loss by more than
        :data:`IDENTIFIED_RISE` both ways (latency: always; it is chosen by its loss)."""
        if name in self.unfitted:
            return False
        s = self.sensitivity.get(name)
        return s is None or min(s) > IDENTIFIED_RISE

    def preset(self, width: float = 3.0, min_rel: float = 0.05) -> dict[str, RandTerm]:
        """A randomization preset centred on the fit: each ``scale`` term's range is the fit +- ``width``
        standard deviations (at least +- ``min_rel`` of it), within the term's bounds; latency pinned;
        parameters not fitted, or fitted to a non-finite value, left out. A parameter whose standard
        deviation is unknown (non-finite: too few informative frames, e.g. no static hold for the mass)
        keeps its whole search range: the fit says nothing tighter."""
        out = {}
        for name, v in self.values.items():
            if name in self.unfitted or not math.isfinite(v):
                continue
            t = self.params[name]
            if t.kind == "action_latency":
                out[name] = RandTerm(kind=t.kind, range=(v, v), mode="reset")
                continue
            std = self.std.get(name, 0.0)
            if math.isfinite(std):
                half = max(width * std, min_rel * v)
                lo, hi = max(v - half, t.range[0]), min(v + half, t.range[1])
            else:
                lo, hi = t.range
            out[name] = RandTerm(kind=t.kind, targets=t.targets, range=(round(lo, 4), round(hi, 4)), mode="reset",
                                 shared=t.shared)  # fmt: skip
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "std": {k: v for k, v in self.std.items() if math.isfinite(v)},  # none for an unfitted parameter
            "loss_nominal": self.loss_nominal,
            "loss_fit": self.loss_fit,
            "latency_losses": {str(k): v for k, v in self.latency_losses.items()},
            "history": self.history,
            "sensitivity": self.sensitivity,
            "identified": {k: self.identified(k) for k in self.values},
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "static": self.static,
            "unfitted": self.unfitted,
        }


def robust_mean(loss: torch.Tensor, trim: float) -> torch.Tensor:
    """``(C,)`` mean of each row of ``loss`` ``(C, E)`` without its ``floor(trim * E)`` largest values."""
    E = loss.shape[1]
    keep = E - min(int(trim * E), E - 1)
    return loss.sort(1).values[:, :keep].mean(1)


class _Population:
    """One env per (candidate, episode) for each log set; pins candidates and returns their losses."""

    def __init__(self, logs: Mapping[str, RobotLogs], params: dict[str, RandTerm], size: int, cfg: SysIdCfg,
                 env_factory: Callable[..., BatchedEnv] | None) -> None:  # fmt: skip
        self.logs, self.params, self.size, self.scales = logs, params, size, cfg.scales()
        self.trim = cfg.trim
        backend, seed = cfg.backend, cfg.seed
        self.envs: dict[str, BatchedEnv] = {}
        for key, lg in logs.items():
            n, task = size * lg.num_episodes, lg.task or key
            if env_factory is not None:
                self.envs[key] = env_factory(task, num_envs=n, randomization=params)
            else:
                self.envs[key] = make(task, num_envs=n, backend=backend, seed=seed, randomization=params)
        self.evaluations = 0

    def _replay(self, key: str, values: list[dict[str, float]]) -> Tracking:
        """Pin candidate ``c`` into envs ``c * E ... c * E + E - 1`` (one per episode; the last candidate
        repeated in the unused envs) and replay log set ``key``."""
        env, E = self.envs[key], self.logs[key].num_episodes
        rows = values + [values[-1]] * (self.size - len(values))
        for name in self.params:
            col = torch.tensor([v[name] for v in rows]).repeat_interleave(E)
            env.randomizer.set(name, col[:, None].to(env.device))
        return replay_logs(env, self.logs[key], torch.arange(env.num_envs) % E)

    def losses(self, values: list[dict[str, float]]) -> np.ndarray:
        """``(len(values),)`` loss of each candidate ``{param: value}``, ``size`` of them per replay."""
        if len(values) > self.size:
            return np.concatenate([self.losses(values[i : i + self.size]) for i in range(0, len(values), self.size)])
        C = len(values)
        total = np.zeros(C)
        for key, lg in self.logs.items():
            loss = self._replay(key, values).loss(**self.scales)
            total += robust_mean(loss.view(self.size, lg.num_episodes), self.trim).double().numpy()[:C]
            self.evaluations += C
        return total

    def residuals(self, values: list[dict[str, float]]) -> list[list[torch.Tensor]]:
        """Each candidate's residuals: per log set ``(episodes, n)`` scaled errors, zero-padded to one ``n``."""
        per: list[list[torch.Tensor]] = [[] for _ in values]
        for key, lg in self.logs.items():
            r = self._replay(key, values).residuals(**self.scales).reshape(self.size, lg.num_episodes, -1).double()
            for c in range(len(values)):
                per[c].append(r[c])
        n = max(x.shape[1] for x in per[0])
        return [[torch.nn.functional.pad(x, (0, n - x.shape[1])) for x in p] for p in per]

    def close(self) -> None:
        for env in self.envs.values():
            env.close()


def identify(
    logs: Mapping[str, RobotLogs],
    params: Mapping[str, RandTerm | Mapping] | None = None,
    cfg: SysIdCfg | None = None,
    *,
    env_factory: Callable[..., BatchedEnv] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SysIdResult:
    """Fit ``params`` to robot logs by replaying them open loop (method in the module docstring).

    Args:
        logs: ``{name: logs}``, each log set replayed in an env of its task (``logs.task``, else the name
            is the task id): e.g. Lift and Push expert episodes and Push friction probes
            (:class:`~worldloop.sim2real.reality.FlickProbe`).
        params: the terms to fit (default :data:`~worldloop.sim2real.reality.FRANKA_PARAMS`): ``op``
            ``scale`` (the default) with ``range`` the search bounds (> 0), ``shared=True``; at most one
            ``action_latency`` term, its ``range`` the latencies tried.
        cfg: search settings.
        env_factory: ``(task, num_envs=, randomization=) -> env`` instead of :func:`worldloop.make`.
        progress: called with a line of text after each generation.

    Raises:
        ValueError: no logs, or a parameter that is not a ``scale`` term with bounds > 0.
    """
    cfg = cfg or SysIdCfg()
    if not logs:
        raise ValueError("identify needs at least one log set")
    params = {k: coerce(k, v) for k, v in (FRANKA_PARAMS if params is None else params).items()}
    latency = [k for k, t in params.items() if t.kind == "action_latency"]
    if len(latency) > 1:
        raise ValueError(f"one action_latency parameter at most, got {latency}")
    cont = [k for k in params if k not in latency]
    for k in cont:
        t = params[k]
        if (t.op or "scale") != "scale" or not t.range[0] > 0:
            raise ValueError(f"parameter {k!r}: fitted parameters are scale factors with bounds > 0, got "
                             f"op={t.op!r} range={t.range}")  # fmt: skip
    lat_values = list(range(int(params[latency[0]].range[0]), int(params[latency[0]].range[1]) + 1)) if latency else []
    size = max(cfg.popsize, len(lat_values), 2 * len(cont) + 1)
    t0 = time.perf_counter()
    pop = _Population(logs, params, size, cfg, env_factory)
    say = progress or (lambda s: None)
    try:
        static = _static_masses(pop, params, say)  # object masses from static holds, where logged
        unfitted = {}
        if not cfg.replay_masses:
            for k in cont:
                if params[k].kind == "body_mass" and k not in static:
                    unfitted[k] = "no static hold of the body in the logs (log a HoldProbe, or SysIdCfg.replay_masses)"
                    say(f"{k}: not fitted, {unfitted[k]}")
        held = {**{k: h.factor for k, h in static.items()}, **{k: 1.0 for k in unfitted}}
        cont = [k for k in cont if k not in held]
        nominal = {k: 1.0 for k in cont}
        # One replay batch: each latency with the other factors at their start (1, the held masses fixed),
        # and the nominal model (every factor 1, no latency) where that is not one of them.
        start = [{**nominal, **held, latency[0]: float(v)} for v in lat_values] if latency else [{**nominal, **held}]
        nominal_model = {**nominal, **{k: 1.0 for k in held}, **{k: 0.0 for k in latency}}
        start_losses = pop.losses(start + ([] if nominal_model in start else [nominal_model])).tolist()
        loss_nominal = start_losses[start.index(nominal_model) if nominal_model in start else -1]
        lat_losses: dict[int, float] = {}
        lat = None
        if latency:
            lat_losses = dict(zip(lat_values, start_losses[: len(lat_values)], strict=True))
            lat = min(lat_losses, key=lat_losses.get)
            say(f"latency: losses {', '.join(f'{k}: {v:.3g}' for k, v in lat_losses.items())} -> {lat} step(s)")
        fixed = {**held, latency[0]: float(lat)} if latency else dict(held)
        best_x, best, history = np.zeros(len(cont)), lat_losses[lat] if latency else start_losses[0], []
        close = [v for v in lat_values if lat_losses[v] <= LATENCY_TIE * lat_losses[lat]]
        if cont and len(close) > 1:  # near-tied latencies: a short fit of each decides
            short = dataclasses.replace(cfg, generations=max(2, cfg.generations // 4))
            trials = {}
            for v in close:
                say(f"latency {v}: a short fit ({short.generations} generations)")
                trials[v] = _cma(pop, cont, params, {**held, latency[0]: float(v)}, short, size, say,
                                 x0=best_x, f0=lat_losses[v], label=f"latency {v} trial")  # fmt: skip
            lat = min(trials, key=lambda v: trials[v][1])
            fixed = {**held, latency[0]: float(lat)}
            best_x, best, history = trials[lat]
            say(f"latency: {lat} step(s) fits best; the fit continues from its trial")
        if cont:
            best_x, best, h = _cma(pop, cont, params, fixed, cfg, size, say, x0=best_x, f0=best)
            history += h
        values = {**{k: float(math.exp(x)) for k, x in zip(cont, best_x, strict=True)}, **held}
        if latency:  # check the latency again at the fit
            cands = [{**values, latency[0]: float(v)} for v in lat_values]
            again = dict(zip(lat_values, pop.losses(cands).tolist(), strict=True))
            lat2 = min(again, key=again.get)
            if lat2 != lat:
                say(f"latency at the fit: {lat2} step(s) (was {lat}); fitting again")
                fixed = {**held, latency[0]: float(lat2)}
                best_x, best, h2 = _cma(pop, cont, params, fixed, cfg, size, say, x0=best_x, f0=again[lat2])
                history += h2
                values = {**{k: float(math.exp(x)) for k, x in zip(cont, best_x, strict=True)}, **held}
            values[latency[0]] = fixed[latency[0]]
        std = _gauss_newton_std(pop, cont, best_x, fixed, cfg.fd_step) if cont else {}
        # the loss with one factor moved to x0.7 and x1.4 of its fit, every factor in one replay batch
        moved = [{**values, **fixed, k: values[k] * f} for k in cont for f in SENSITIVITY_FACTORS]
        moved_losses = pop.losses(moved).reshape(len(cont), len(SENSITIVITY_FACTORS)) if cont else None
        sensitivity = {k: [float(v) / max(best, 1e-12) - 1.0 for v in moved_losses[i]] for i, k in enumerate(cont)}
        if latency:
            std[latency[0]] = 0.0
        std.update({k: h.factor_std for k, h in static.items()})
        std.update({k: float("nan") for k in unfitted})
        return SysIdResult(
            values={k: values[k] for k in params},
            std={k: std[k] for k in params},
            loss_nominal=loss_nominal,
            loss_fit=best,
            latency_losses=lat_losses,
            history=history,
            evaluations=pop.evaluations,
            seconds=time.perf_counter() - t0,
            params=params,
            sensitivity=sensitivity,
            static={k: h.summary() for k, h in static.items()},
            unfitted=unfitted,
        )
    finally:
        pop.close()


def _static_masses(pop: _Population, params: dict[str, RandTerm], say) -> dict[str, HeldMass]:
    """Each ``body_mass`` term on one free body, found from the static holds of the log set that has the
    most of them (:func:`~worldloop.sim2real.statics.held_mass`); terms no log set holds still are left
    to the replay fit."""
    out: dict[str, HeldMass] = {}
    for name, term in params.items():
        if term.kind != "body_mass" or term.op not in (None, "scale"):
            continue
        found = []
        for key, logs in pop.logs.items():
            m = pop.envs[key].mj_model
            bodies = [m.body(b).name for b in range(m.nbody) if m.body_jntnum[b] == 1
                      and int(m.jnt_type[m.body_jntadr[b]]) == int(mujoco.mjtJoint.mjJNT_FREE)
                      and re.fullmatch(term.targets or "", m.body(b).name)]  # fmt: skip
            if len(bodies) != 1 or logs.effort is None:
                continue
            try:
                found.append((key, held_mass(logs, pop.envs[key], bodies[0])))
            except LogError as e:
                say(f"{name}: not from static holds in {key}: {e}")
        if found:
            key, best = max(found, key=lambda kv: kv[1].frames)
            best.log = key
            out[name] = best
            say(f"{name}: {best.factor:.3f} +- {best.factor_std:.3f} of nominal from {best.frames} static frames "
                f"of {key} (torque residual {best.residual_rms:.2f} N m rms)")  # fmt: skip
    return out


def _cma(pop, cont, params, fixed, cfg, size, say, x0=None, f0=None, label="fit"):
    """CMA-ES over the log factors of ``cont`` from ``x0`` (default 0: every factor 1), whose loss ``f0``
    is evaluated here unless given; returns ``(best x, best loss, best loss per generation)``."""
    import cma

    lo = [math.log(params[k].range[0]) for k in cont]
    hi = [math.log(params[k].range[1]) for k in cont]
    x0 = np.zeros(len(cont)) if x0 is None else np.asarray(x0)
    es = cma.CMAEvolutionStrategy(
        x0, cfg.sigma0, {"bounds": [lo, hi], "popsize": size, "seed": cfg.seed + 1, "verbose": -9, "tolfun": cfg.tolfun}
    )
    history = []
    if f0 is None:
        f0 = float(pop.losses([{**{k: math.exp(x) for k, x in zip(cont, x0, strict=True)}, **fixed}])[0])
    best_x, best = x0, f0
    for g in range(cfg.generations):
        xs = es.ask()
        cands = [{**{k: math.exp(x) for k, x in zip(cont, xv, strict=True)}, **fixed} for xv in xs]
        f = pop.losses(cands)
        es.tell(xs, f.tolist())
        i = int(np.argmin(f))
        if f[i] < best:
            best, best_x = float(f[i]), np.asarray(xs[i])
        history.append(best)
        say(f"{label}: generation {g + 1:3d}  best loss {best:.4g}  " + "  ".join(
            f"{k} {math.exp(x):.3f}" for k, x in zip(cont, best_x, strict=True)))  # fmt: skip
        if es.stop():
            break
    return best_x, best, history


def _gauss_newton_std(pop, cont, x, fixed, h) -> dict[str, float]:
    """Episode-jackknife standard deviations of the fitted factors (module docstring)."""
    P = len(cont)
    cands = [{**{k: math.exp(v) for k, v in zip(cont, x, strict=True)}, **fixed}]
    for i in range(P):
        for s in (1.0, -1.0):
            xx = np.array(x, dtype=float)
            xx[i] += s * h
            cands.append({**{k: math.exp(v) for k, v in zip(cont, xx, strict=True)}, **fixed})
    per = pop.residuals(cands)  # per candidate: [(E_s, n) per log set]
    r0 = torch.cat(per[0])  # (E, n)
    J = torch.stack([(torch.cat(per[1 + 2 * i]) - torch.cat(per[2 + 2 * i])) / (2 * h) for i in range(P)], -1)
    E = r0.shape[0]
    A = torch.einsum("enp,enq->epq", J, J)  # per-episode J^T J
    b = torch.einsum("enp,en->ep", J, r0)  # per-episode J^T r
    A_all, b_all = A.sum(0), b.sum(0)
    steps = torch.stack([-torch.linalg.pinv(A_all - A[e]) @ (b_all - b[e]) for e in range(E)])  # theta_(-e) - theta
    var = (E - 1) / E * (steps - steps.mean(0)).square().sum(0)
    return {k: float(math.exp(x[i]) * math.sqrt(float(var[i]))) for i, k in enumerate(cont)}
