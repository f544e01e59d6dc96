"""Cross-simulator transfer (sim-to-sim): a run's policy evaluated on every installed physics backend.

    result = transfer("runs/Franka-Lift-v0/<date_time>", episodes={"mujoco": 1000, "newton": 200})
    plot_transfer(result, "transfer.png")

The same checkpoint, task config and seed run on each backend; the drop is measured against the
backend the run trained on, the field's sim-to-sim gap (e.g. train in MuJoCo, test in another engine).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from worldloop.envs.backends import BACKENDS
from worldloop.envs.loop import run_episodes, wilson_interval
from worldloop.policies import run_dir
from worldloop.sim2real.common import episode_stats, installed_backends, jsonable, load_policy, pin_nominal
from worldloop.sim2real.isaaclab_transfer import (
    counterpart,
    evaluate_on_isaaclab,
    isaaclab_available,
    no_counterpart_reason,
    setup_hint,
)


def transfer(
    run: str | Path,
    *,
    checkpoint: str = "best",
    backends: Sequence[str] | None = None,
    episodes: int | Mapping[str, int] = 1000,
    num_envs: int | Mapping[str, int] | None = None,
    seed: int = 0,
    randomization: Literal["train", "nominal"] = "train",
    device: str | None = None,
) -> dict:
    """Evaluate ``run``'s policy on each backend and its drop against the training backend.

    Args:
        run: a run directory (``runs/<task>/<date_time>``).
        checkpoint: ``best``, ``last``, ``model_<it>.pt`` or a path.
        backends: backends to evaluate; default every installed one (:func:`installed_backends`), plus
            ``isaaclab`` where the task has an Isaac Lab counterpart (:mod:`.isaaclab_transfer`: the policy on
            that Isaac Lab task, in the Isaac Lab environment). The training backend (``config.json``) is
            evaluated first, as the reference, whether listed or not.
        episodes: episodes per backend, or ``{backend: episodes}`` (backends not named: 1000).
        num_envs: envs stepped together per backend (or ``{backend: n}``); default ``min(episodes, 1024)``.
        seed: env seed, the same on every backend (same initial states where the backends draw alike).
        randomization: ``train``: the run's randomization terms drawn as in training (as ``worldloop
            play``); ``nominal``: every term pinned at its nominal value, the backends' physics alone.
        device: torch device; default the run's.

    Returns:
        ``{"run", "task", "checkpoint", "seed", "randomization", "training_backend": str,
        "backends": {name: {...}}, "not_installed": [str], "setup": {name: how to install it},
        "not_evaluated": {name: why}, "seconds": float}``; each backend, training
        backend first: ``episodes`` int, ``num_envs`` int, ``success_rate`` float in [0, 1],
        ``success_ci95`` [lo, hi] (Wilson), ``mean_return`` float, ``return_ci95`` [lo, hi] (normal
        interval of the mean, ``[None, None]`` below 2 episodes), ``mean_length`` float [policy steps],
        ``success_drop`` float (training backend's success rate minus this one's; > 0: worse),
        ``success_drop_ci95`` [lo, hi] (Newcombe's hybrid score interval of a difference of
        proportions, Newcombe 1998, Stat. Med. 17:873, method 10), ``return_drop`` float or ``None``
        (relative: ``(R_train - R) / |R_train|``; ``None`` if ``R_train`` is 0), ``seconds`` float. The
        ``isaaclab`` row also has ``task`` (the counterpart's id) and ``note`` (what differs); its return is
        Isaac Lab's reward, so its ``return_drop`` is ``None``. ``isaaclab`` is evaluated with the
        counterpart's own reset events (``randomization`` applies to worldloop's backends).

    Raises:
        ValueError: an unknown backend name, or one that is not installed (the message says which
            package to install), ``isaaclab`` asked for a task without a counterpart (the message says
            why), ``episodes``/``num_envs`` below 1, or another ``randomization``.
        IsaacLabEvalError: the evaluation in the Isaac Lab environment failed.
    """
    t_start = time.perf_counter()
    if randomization not in ("train", "nominal"):
        raise ValueError(f"randomization must be 'train' or 'nominal', got {randomization!r}")
    run = Path(run)
    task = run_dir.read_config(run).task
    trained = run_dir.read_backend(run)
    if trained == "isaaclab":  # an Isaac Lab task runs on its own backend only
        if backends is not None and set(backends) - {"isaaclab"}:
            raise ValueError(f"{task} is an Isaac Lab task: it runs on the isaaclab backend only, got {list(backends)}")
        available = wanted = ["isaaclab"]
    else:
        available = installed_backends()
        wanted = list(dict.fromkeys([trained, *(available if backends is None else backends)]))
    unknown = [b for b in wanted if b not in (*BACKENDS, "isaaclab")]
    if unknown:
        raise ValueError(f"unknown backend(s) {unknown}; allowed: {', '.join((*BACKENDS, 'isaaclab'))}")
    not_evaluated: dict[str, str] = {}
    if trained != "isaaclab":
        if counterpart(task) is None:
            if "isaaclab" in wanted:
                raise ValueError(f"backend isaaclab: {no_counterpart_reason(task)}")
            if backends is None:
                not_evaluated["isaaclab"] = no_counterpart_reason(task)
        elif backends is None or "isaaclab" in wanted:
            wanted = list(dict.fromkeys([*wanted, "isaaclab"]))
            if isaaclab_available():
                available = [*available, "isaaclab"]
            elif backends is not None:
                raise ValueError(f"backend isaaclab: no Isaac Lab environment; create it {setup_hint()}")
    missing = [b for b in wanted if b not in available]
    if missing and (backends is not None or trained in missing):
        raise ValueError(
            f"backend(s) {missing} are not installed (newton needs the newton and warp-lang packages: "
            f"pip install 'newton[sim]' warp-lang); installed: {available}"
        )
    out_backends: dict[str, dict] = {}
    for backend in wanted:
        if backend not in available:
            continue
        n_ep = _per_backend(episodes, backend, 1000, "episodes")
        n_env = _per_backend(num_envs, backend, min(n_ep, 1024), "num_envs")
        if backend == "isaaclab" and trained != "isaaclab":
            out_backends[backend] = evaluate_on_isaaclab(
                run, checkpoint=checkpoint, episodes=n_ep, num_envs=n_env, seed=seed, device=device
            )
            continue
        t0 = time.perf_counter()
        env, _, policy = load_policy(
            run, checkpoint=checkpoint, num_envs=n_env, backend=backend, seed=seed, device=device
        )
        if randomization == "nominal":
            pin_nominal(env)
        eps = run_episodes(env, policy, n_ep)
        stats = episode_stats(eps)
        stats["mean_length"] = float(eps.lengths.double().mean())
        env.close()
        out_backends[backend] = {"num_envs": n_env, **stats, "seconds": round(time.perf_counter() - t0, 1)}
    ref = out_backends[trained]
    for stats in out_backends.values():
        stats["success_drop"] = ref["success_rate"] - stats["success_rate"]
        stats["success_drop_ci95"] = newcombe_interval(
            ref["successes"], ref["episodes"], stats["successes"], stats["episodes"]
        )
        r0 = ref["mean_return"]
        other_reward = "task" in stats  # a counterpart task: its return is another reward
        stats["return_drop"] = (r0 - stats["mean_return"]) / abs(r0) if r0 != 0 and not other_reward else None
    return jsonable(
        {
            "run": str(run),
            "task": task,
            "checkpoint": checkpoint,
            "seed": seed,
            "randomization": randomization,
            "training_backend": trained,
            "backends": out_backends,
            "not_installed": [b for b in wanted if b not in available],
            "setup": {b: _SETUP[b]() for b in wanted if b not in available},
            "not_evaluated": not_evaluated,
            "seconds": round(time.perf_counter() - t_start, 1),
        }
    )


_SETUP = {
    "newton": lambda: "pip install 'newton[sim]' warp-lang",
    "isaaclab": setup_hint,
    "mujoco": lambda: "pip install mujoco",
}
"""How to install each backend, for ``setup``."""


def _per_backend(value: int | Mapping[str, int] | None, backend: str, default: int, what: str) -> int:
    n = value.get(backend, default) if isinstance(value, Mapping) else default if value is None else value
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"transfer: {what} for backend {backend!r} must be an integer >= 1, got {n!r}")
    return n


def newcombe_interval(s1: int, n1: int, s2: int, n2: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of ``p1 - p2`` for two independent binomial proportions ``s1/n1`` and ``s2/n2``:
    Newcombe's hybrid score interval from the two Wilson intervals (Newcombe 1998, "Interval
    estimation for the difference between independent proportions", Stat. Med. 17:873, method 10)."""
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson_interval(s1, n1, z)
    l2, u2 = wilson_interval(s2, n2, z)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def plot_transfer(result: Mapping, path: str | Path) -> Path:
    """Success rate and mean return per backend with their 95% intervals (a PNG at ``path``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["backends"])
    stats = [result["backends"][b] for b in names]
    x = range(len(names))
    colors = ["tab:blue" if b == result["training_backend"] else "tab:orange" for b in names]
    fig, (ax_s, ax_r) = plt.subplots(1, 2, figsize=(5 + 2 * len(names), 4.2))
    rate = [100 * s["success_rate"] for s in stats]
    err = [[100 * (s["success_rate"] - s["success_ci95"][0]) for s in stats],
           [100 * (s["success_ci95"][1] - s["success_rate"]) for s in stats]]  # fmt: skip
    ax_s.bar(x, rate, yerr=err, capsize=6, color=colors)
    ax_s.set_ylabel("success rate [%] (95% Wilson CI)")
    ax_s.set_title("success")
    # A counterpart task's return is another reward: no bar on the same axis, its value as text.
    ret = [math.nan if "task" in s else s["mean_return"] for s in stats]
    ci = [s["return_ci95"] if None not in s["return_ci95"] else (s["mean_return"],) * 2 for s in stats]
    rerr = [[r - c[0] for r, c in zip(ret, ci, strict=True)], [c[1] - r for r, c in zip(ret, ci, strict=True)]]
    ax_r.bar(x, ret, yerr=rerr, capsize=6, color=colors)
    ax_r.set_ylabel("mean episode return (95% CI)")
    ax_r.set_title("return (sum of weighted rewards)")
    labels = [f"{b}\n(trained)" if b == result["training_backend"] else b for b in names]
    for i, s in enumerate(stats):
        if "task" in s:
            labels[i] += "\n" + s["task"].removeprefix("isaaclab:")
    for ax in (ax_s, ax_r):
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels)
        ax.set_xlabel("physics backend")
    for i, s in enumerate(stats):
        if "task" in s:
            ax_r.annotate(f"its own reward:\n{s['mean_return']:.3g}", (i, 0.0), ha="center", va="bottom",
                          xytext=(0, 4), textcoords="offset points")  # fmt: skip
    for i, s in enumerate(stats):
        if names[i] == result["training_backend"]:
            continue
        top = 100 * s["success_ci95"][1]
        ax_s.annotate(f"drop {100 * s['success_drop']:+.1f} pp", (i, top), ha="center", va="bottom",
                      xytext=(0, 4), textcoords="offset points")  # fmt: skip
        if s["return_drop"] is not None:
            top = ci[i][1]
            ax_r.annotate(f"drop {100 * s['return_drop']:+.1f}%", (i, max(top, 0.0)), ha="center", va="bottom",
                          xytext=(0, 4), textcoords="offset points")  # fmt: skip
    ax_s.set_ylim(0, 112)
    lo, hi = ax_r.get_ylim()
    ax_r.set_ylim(lo, hi + 0.12 * (hi - lo))
    episodes = ", ".join(f"{b} {s['episodes']}" for b, s in zip(names, stats, strict=True))
    fig.suptitle(f"{result['task']}: cross-simulator transfer of {result['checkpoint']} (episodes: {episodes})")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
