"""Cost of one PPO iteration per policy, measured back to back at the same batch.

    python -m worldloop.scripts.policy_cost --task Franka-Reach-v0 --iterations 6

The policies' runners share one env and take turns one iteration at a time, so a busy machine slows
all of them alike. Times are the ones rsl-rl's runner measures (rollout collection, update).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from worldloop.policies.train import TrainCfg


@dataclass(kw_only=True)
class CostCfg:
    """Seconds per PPO iteration: MLP (default and parameter-matched) vs world-action, back to back."""

    task: str = "Franka-Reach-v0"
    """Registered task id."""
    num_envs: int | None = None
    """Envs per iteration; default the task's training default."""
    iterations: int = 6
    """Iterations per policy, taken in turns (plus one warm-up iteration each, dropped)."""
    matched_dims: tuple[int, ...] = (384, 192, 96)
    """Hidden widths of the MLP whose parameter count matches the world-action model's (on Reach)."""


def _variants(cfg: CostCfg) -> dict[str, TrainCfg]:
    base = TrainCfg.from_task(cfg.task)
    if cfg.num_envs:
        base = dataclasses.replace(base, num_envs=cfg.num_envs)
    dims = {"actor_hidden_dims": cfg.matched_dims, "critic_hidden_dims": cfg.matched_dims}
    return {
        "mlp": base,
        "mlp_matched": dataclasses.replace(base, agent=dataclasses.replace(base.agent, **dims)),
        "world_action": dataclasses.replace(base, policy="world-action"),
    }


def measure(cfg: CostCfg) -> dict:
    """``{policy: {"iteration_s", "collect_s", "learn_s", "params"}}`` (medians over iterations) and the
    ratios of the world-action iteration time to each MLP's.

    One env is built; one rsl-rl ``OnPolicyRunner`` per policy steps it, and the runners take turns
    one iteration at a time (collect + update, timed by the runner), so load from other processes
    falls on all of them alike."""
    import contextlib
    import io

    import torch
    from rsl_rl.runners import OnPolicyRunner  # noqa: TID253 - imported only when measuring

    from worldloop.policies.rsl_rl_adapter import RslRlVecEnv
    from worldloop.policies.train import rsl_rl_cfg
    from worldloop.tasks import make

    variants = _variants(cfg)
    first = next(iter(variants.values()))
    torch.manual_seed(0)
    env = make(cfg.task, num_envs=first.num_envs, seed=0, cfg=first.env)
    vec = RslRlVecEnv(env, log_interval=first.agent.num_steps_per_env, reward_scale=first.agent.reward_scale)
    runners, times = {}, {}
    with contextlib.redirect_stdout(io.StringIO()):
        for name, tcfg in variants.items():
            runners[name] = OnPolicyRunner(vec, rsl_rl_cfg(tcfg, str(env.device)), log_dir=None, device=str(env.device))
            times[name] = {"collect": [], "learn": []}

    def timed_log(name):
        def log(*, collect_time, learn_time, **_):
            times[name]["collect"].append(collect_time)
            times[name]["learn"].append(learn_time)

        return log

    for name, r in runners.items():
        r.logger.log = timed_log(name)
    for _ in range(cfg.iterations + 1):  # + 1 warm-up, dropped
        for r in runners.values():
            r.learn(1)
    env.close()
    out: dict = {"task": cfg.task, "num_envs": first.num_envs, "steps_per_env": first.agent.num_steps_per_env,
                 "torch_threads": torch.get_num_threads()}  # fmt: skip
    for name, r in runners.items():
        c, lrn = times[name]["collect"][1:], times[name]["learn"][1:]
        params = sum(p.numel() for p in {*r.alg.actor.parameters(), *r.alg.critic.parameters()} if p.requires_grad)
        out[name] = {
            "iteration_s": round(statistics.median(a + b for a, b in zip(c, lrn, strict=True)), 3),
            "collect_s": round(statistics.median(c), 3),
            "learn_s": round(statistics.median(lrn), 3),
            "iterations": len(c),
            "params": params,
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
