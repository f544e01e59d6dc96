"""Sample efficiency of world-action PPO against MLP PPO of matched parameter count.

    python -m worldloop.scripts.sample_efficiency --task Franka-Reach-v0 --seeds 0 1 2 --out se_reach.json

Trains every (policy, seed) pair with the same task, envs and iterations, one run at a time, and
records each run's training-success curve (``Episode/success``: the fraction of episodes ending in an
iteration that succeeded, exploration noise on), the env steps at which it first reached
``--threshold``, and the final deterministic success (``eval.json``). The JSON is rewritten after
every run (a killed comparison keeps what finished); ``<out>.png`` plots the curves.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from worldloop.policies.train import TrainCfg, train


@dataclass(kw_only=True)
class SampleEfficiencyCfg:
    """World-action PPO vs MLP PPO of matched parameter count: env steps to a training success rate."""

    task: str = "Franka-Reach-v0"
    """Registered task id."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds, each run for every policy."""
    policies: tuple[str, ...] = ("mlp", "world-action")
    """Arms: ``mlp`` (hidden widths ``--mlp-dims``) and ``world-action`` (its defaults)."""
    num_envs: int | None = None
    """Envs per iteration (every arm); default the task's."""
    max_iterations: int | None = None
    """Iterations of every run; default the task's."""
    mlp_dims: tuple[int, ...] = (384, 192, 96)
    """Actor and critic hidden widths of the MLP arm: 212.6k parameters on Reach against the
    world-action model's 211.6k (actor with world model 161k + critic 50k)."""
    threshold: float = 0.8
    """Training success that counts as learned."""
    eval_episodes: int = 200
    """Episodes of each final deterministic evaluation."""
    log_root: str = "runs/sample_efficiency"
    """Where the runs go."""
    out: str = "sample_efficiency.json"
    """Result file (and ``.png`` beside it)."""
    world_action: dict = field(default_factory=dict)
    """Overrides of WorldActionCfg fields for the world-action arm (Python API only)."""


def _curve(run: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ev = EventAccumulator(run, size_guidance={"scalars": 0})
    ev.Reload()
    return [(e.step, e.value) for e in ev.Scalars("Episode/success")]


def _steps_to(curve: list[tuple[int, float]], threshold: float, per_iteration: int) -> int | None:
    for it, v in curve:
        if v >= threshold:
            return (it + 1) * per_iteration
    return None


def t_interval(xs: list[float]) -> tuple[float, float]:
    """95% Student-t interval of the mean of ``xs`` (two-sided; ``nan`` for fewer than 2 values)."""
    if len(xs) < 2:
        return (math.nan, math.nan)
    t975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}
    m, s = statistics.mean(xs), statistics.stdev(xs)
    h = t975.get(len(xs), 1.96) * s / math.sqrt(len(xs))
    return (m - h, m + h)


def run(cfg: SampleEfficiencyCfg) -> dict:
    """Train every arm and seed; returns (and writes) ``{"runs": [...], "summary": {...}}``."""
    from worldloop.policies.world_action_cfg import WorldActionCfg

    out = Path(cfg.out)
    result: dict = {"config": dataclasses.asdict(cfg), "runs": []}
    if out.is_file():  # continue a killed comparison
        result["runs"] = json.loads(out.read_text()).get("runs", [])
    done = {(r["policy"], r["seed"]) for r in result["runs"]}
    for seed in cfg.seeds:
        for policy in cfg.policies:
            if (policy, seed) in done:
                continue
            base = TrainCfg.from_task(cfg.task, seed=seed, eval_episodes=cfg.eval_episodes)
            over = {"log_root": cfg.log_root, "run_name": f"{policy}_s{seed}"}
            if cfg.num_envs:
                over["num_envs"] = cfg.num_envs
            if cfg.max_iterations:
                over["max_iterations"] = cfg.max_iterations
            if policy == "mlp":
                dims = {"actor_hidden_dims": cfg.mlp_dims, "critic_hidden_dims": cfg.mlp_dims}
                over["agent"] = dataclasses.replace(base.agent, **dims)
            else:
                over["policy"] = "world-action"
                over["world_action"] = dataclasses.replace(WorldActionCfg(), **cfg.world_action)
            tcfg = dataclasses.replace(base, **over)
            summary = train(tcfg)
            per_it = tcfg.num_envs * tcfg.agent.num_steps_per_env
            curve = _curve(summary["run_dir"])
            result["runs"].append(
                {
                    "policy": policy,
                    "seed": seed,
                    "run_dir": summary["run_dir"],
                    "env_steps_per_iteration": per_it,
                    "steps_to_threshold": _steps_to(curve, cfg.threshold, per_it),
                    "final_success": summary.get("success_rate"),
                    "final_success_ci95": summary.get("success_ci95"),
                    "train_seconds": summary["train_seconds"],
                    "curve": curve,
                }
            )
            result["summary"] = _summary(result["runs"], cfg)
            out.write_text(json.dumps(result, indent=1))
            _plot(result, out.with_suffix(".png"), cfg)
    return result


def _policies(runs: list[dict]) -> list[str]:
    """The arms in ``runs``, in their first-run order: a comparison continued with fewer ``--policies``
    keeps the arms it ran before."""
    return list(dict.fromkeys(r["policy"] for r in runs))


def _summary(runs: list[dict], cfg: SampleEfficiencyCfg) -> dict:
    s: dict = {}
    for policy in _policies(runs):
        rs = [r for r in runs if r["policy"] == policy]
        reached = [r["steps_to_threshold"] for r in rs if r["steps_to_threshold"] is not None]
        finals = [r["final_success"] for r in rs if r["final_success"] is not None]
        s[policy] = {
            "seeds": len(rs),
            "reached": len(reached),
            "steps_to_threshold_mean": statistics.mean(reached) if reached else None,
            "steps_to_threshold_ci95": t_interval([float(x) for x in reached]),
            "final_success_mean": statistics.mean(finals) if finals else None,
            "final_success_ci95": t_interval(finals),
            "train_seconds_mean": statistics.mean(r["train_seconds"] for r in rs) if rs else None,
        }
    return s


def _plot(result: dict, path: Path, cfg: SampleEfficiencyCfg) -> None:
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colors = {p: f"C{i}" for i, p in enumerate(_policies(result["runs"]))}
    for r in result["runs"]:
        xs = [(it + 1) * r["env_steps_per_iteration"] / 1e6 for it, _ in r["curve"]]
        ax.plot(xs, [v for _, v in r["curve"]], color=colors[r["policy"]], alpha=0.8, lw=1,
                label=f"{r['policy']} seed {r['seed']}")  # fmt: skip
    ax.axhline(cfg.threshold, color="k", ls=":", lw=0.8)
    ax.set_xlabel("env steps [millions]")
    ax.set_ylabel("training success")
    ax.set_title(f"{cfg.task}: world-action vs MLP PPO (matched parameters)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict:
    import tyro

    cfg = tyro.cli(SampleEfficiencyCfg, args=argv, prog="python -m worldloop.scripts.sample_efficiency")
    result = run(cfg)
    print(json.dumps(result["summary"], indent=2), flush=True)
    return result


if __name__ == "__main__":
    main()
