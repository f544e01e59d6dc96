"""Cost of one PPO iteration per policy, measured back to back at the same batch.

    python -m worldloop.scripts.policy_cost --task Franka-Reach-v0 --iterations 4 --rounds 2

Each round trains every policy for ``--iterations`` iterations (a fresh run, no evaluation) in turn,
so a busy machine slows all of them alike; the first iteration of a run (warm-up) is dropped. Times
are rsl-rl's ``Perf/collection_time`` and ``Perf/learning_time`` from each run's event file.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from worldloop.policies.train import TrainCfg, train


@dataclass(kw_only=True)
class CostCfg:
    """Seconds per PPO iteration: MLP (default and parameter-matched) vs world-action, back to back."""

    task: str = "Franka-Reach-v0"
    """Registered task id."""
    num_envs: int | None = None
    """Envs per iteration; default the task's training default."""
    iterations: int = 4
    """Iterations per run (the first is dropped as warm-up)."""
    rounds: int = 2
    """Times every policy is run, interleaved."""
    matched_dims: tuple[int, ...] = (384, 192, 96)
    """Hidden widths of the MLP whose parameter count matches the world-action model's (on Reach)."""


def _variants(cfg: CostCfg) -> dict[str, TrainCfg]:
    base = TrainCfg.from_task(cfg.task, max_iterations=cfg.iterations, eval_episodes=0, save_interval=10_000)
    if cfg.num_envs:
        base = dataclasses.replace(base, num_envs=cfg.num_envs)
    dims = {"actor_hidden_dims": cfg.matched_dims, "critic_hidden_dims": cfg.matched_dims}
    return {
        "mlp": base,
        "mlp_matched": dataclasses.replace(base, agent=dataclasses.replace(base.agent, **dims)),
        "world_action": dataclasses.replace(base, policy="world-action"),
    }


def _times(run: str) -> tuple[list[float], list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ev = EventAccumulator(run)
    ev.Reload()
    collect = [e.value for e in ev.Scalars("Perf/collection_time")][1:]
    learn = [e.value for e in ev.Scalars("Perf/learning_time")][1:]
    return collect, learn


def measure(cfg: CostCfg) -> dict:
    """``{policy: {"collect_s", "learn_s", "iteration_s", "params"}}`` (medians over rounds and iterations)
    and ``ratio_world_action_to_mlp`` / ``..._to_mlp_matched`` of the iteration time."""
    variants = _variants(cfg)
    samples: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in variants}
    with tempfile.TemporaryDirectory() as root:
        for _ in range(cfg.rounds):
            for name, tcfg in variants.items():
                summary = train(dataclasses.replace(tcfg, log_root=root, run_name=name))
                c, lrn = _times(summary["run_dir"])
                samples[name][0].extend(c)
                samples[name][1].extend(lrn)
    out: dict = {"task": cfg.task, "num_envs": variants["mlp"].num_envs}
    for name, (c, lrn) in samples.items():
        it = [a + b for a, b in zip(c, lrn, strict=True)]
        out[name] = {
            "collect_s": round(statistics.median(c), 3),
            "learn_s": round(statistics.median(lrn), 3),
            "iteration_s": round(statistics.median(it), 3),
            "iterations": len(it),
        }
    for ref in ("mlp", "mlp_matched"):
        out[f"ratio_world_action_to_{ref}"] = round(out["world_action"]["iteration_s"] / out[ref]["iteration_s"], 2)
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    import tyro

    result = measure(tyro.cli(CostCfg, args=argv, prog="python -m worldloop.scripts.policy_cost"))
    print(json.dumps(result, indent=2), flush=True)
    return result


if __name__ == "__main__":
    main()
