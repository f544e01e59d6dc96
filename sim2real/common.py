"""What the evaluation-based measurements share: a run's policy in an env with chosen randomization
terms, terms pinned at their nominal value, installed backends, and outcome summaries as plain dicts."""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from worldloop.envs.backends import BACKENDS
from worldloop.envs.backends.base import model_param
from worldloop.envs.loop import Episodes, mean_interval, wilson_interval
from worldloop.envs.randomization import RandTerm
from worldloop.envs.randomization.terms import coerce
from worldloop.policies import run_dir
from worldloop.policies.train import inference_policy, load_run

if TYPE_CHECKING:
    from worldloop.envs.batched_env import BatchedEnv
    from worldloop.envs.loop import Policy
    from worldloop.policies.runner import Runner


def installed_backends() -> list[str]:
    """The physics backends this machine can run: ``mujoco`` always, ``newton`` if ``newton`` and
    ``warp`` import."""
    found = []
    for name in BACKENDS:
        if name == "newton":
            try:
                import newton  # noqa: F401
                import warp  # noqa: F401
            except (ImportError, OSError):
                continue
        found.append(name)
    return found


def run_terms(run: str | Path) -> dict[str, RandTerm]:
    """The randomization terms a run trained with (its ``config.json``'s ``env.randomization``)."""
    cfg = run_dir.read_config(run)
    return {name: coerce(name, t) for name, t in (getattr(cfg.env, "randomization", None) or {}).items()}


def coerce_terms(terms: Mapping[str, RandTerm | Mapping] | None) -> dict[str, RandTerm]:
    """Terms given as :class:`RandTerm` or their ``config.json`` dicts, as :class:`RandTerm`."""
    return {name: coerce(name, t) for name, t in (terms or {}).items()}


def load_policy(
    run: str | Path,
    *,
    checkpoint: str,
    num_envs: int,
    backend: str,
    seed: int,
    randomization: Mapping[str, RandTerm] | None = None,
    device: str | None = None,
) -> tuple[BatchedEnv, Runner, Policy]:
    """The run's env (``randomization`` replacing its terms if given) and checkpoint, reseeded with
    ``seed`` after loading (a checkpoint restores the training generators); returns ``(env, runner, policy)``."""
    with contextlib.redirect_stdout(io.StringIO()):  # rsl-rl prints the model at every construction
        env, runner = load_run(
            run, checkpoint=checkpoint, num_envs=num_envs, backend=backend, device=device, seed=seed,
            randomization=randomization,
        )  # fmt: skip
    env.reset(seed=seed)
    return env, runner, inference_policy(runner, env.num_envs)


def nominal_draw(env: BatchedEnv, name: str) -> torch.Tensor:
    """``(k,)`` the draw of term ``name`` that leaves the scene as built: 1 for ``op="scale"``, 0 for
    ``"add"``, the scene's own value for ``"abs"`` (the mean over the targets of a shared draw), 0 steps
    for ``action_latency``."""
    t = env.randomizer.terms[name]
    if t.op == "scale":
        return torch.ones(t.k, device=env.device)
    if t.op == "add" or t.kind.group != "model":
        return torch.zeros(t.k, device=env.device)
    nominal = torch.as_tensor(model_param(env.mj_model, t.field), dtype=torch.float64).flatten()
    scene = t.sign * nominal[t.write.cpu()]
    col = t.col.cpu()
    return torch.stack([scene[col == c].mean() for c in range(t.k)]).float().to(env.device)


def pin_nominal(env: BatchedEnv, names: list[str] | None = None) -> None:
    """Pin terms ``names`` (default every term) at their :func:`nominal_draw` in every env."""
    for name in env.randomizer.terms if names is None else names:
        env.randomizer.set(name, nominal_draw(env, name))


def success_stats(success: torch.Tensor, returns: torch.Tensor | None = None) -> dict:
    """``{"episodes", "successes", "success_rate", "success_ci95"}`` of a ``(n,)`` bool tensor (Wilson
    interval), plus ``"mean_return"``/``"return_ci95"`` (normal interval) if ``returns`` ``(n,)`` is given."""
    n, s = success.numel(), int(success.sum())
    out = {"episodes": n, "successes": s, "success_rate": s / n if n else 0.0, "success_ci95": wilson_interval(s, n)}
    if returns is not None:
        out["mean_return"] = float(returns.double().mean()) if n else math.nan
        out["return_ci95"] = mean_interval(returns)
    return out


def episode_stats(episodes: Episodes, mask: torch.Tensor | None = None) -> dict:
    """:func:`success_stats` of the episodes whose env is in ``mask`` ``(num_envs,)`` (default all)."""
    keep = slice(None) if mask is None else mask.cpu()[episodes.env_ids]
    return success_stats(episodes.success[keep], episodes.returns[keep])


def jsonable(x):
    """``x`` with tuples as lists and non-finite floats as ``None`` (strict JSON)."""
    if isinstance(x, Mapping):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
