"""``worldloop train``: PPO (rsl-rl-lib's ``OnPolicyRunner``) on a registered task.

Run directory (``<log_root>/<task>/<date_time>[_<run_name>]/``):
    config.json             the resolved train, env and agent config (reloaded by ``play``)
    model_<it>.pt           checkpoints (rsl-rl format), every ``save_interval`` iterations and the last
    events.out.tfevents.*   tensorboard: losses, episode return/length/success, each reward term, fps
    eval.json               success over ``eval_episodes`` episodes of the final deterministic policy
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from worldloop.envs.batched_env import BatchedEnv, build_cfg
from worldloop.envs.loop import evaluate
from worldloop.policies.ppo import PPOCfg, TrainDefaults
from worldloop.scripts.config_cli import add_dataclass_args, apply_overrides, overrides_for
from worldloop.tasks import get_task


@dataclass(kw_only=True)
class TrainCfg:
    """Settings of a training run."""

    task: str = "Franka-Reach-v0"
    """Registered task id (``worldloop list``)."""
    num_envs: int | None = None
    """Envs stepped together; default: the task's training default."""
    max_iterations: int | None = None
    """PPO iterations (each ``num_envs * agent.num_steps_per_env`` env steps); default: the task's."""
    backend: str = "auto"
    """Physics backend: auto, mujoco or newton."""
    device: str | None = None
    """Torch device for env and learner; default cuda if available else cpu."""
    seed: int = 0
    """Seed for the env generator and the network initialisation."""
    save_interval: int = 50
    """Iterations between checkpoints."""
    log_root: str = "runs"
    """Directory holding one folder per run."""
    run_name: str = ""
    """Suffix of the run folder name."""
    eval_episodes: int = 1000
    """Episodes of the final deterministic policy used to report success (0 skips)."""
    agent: PPOCfg = field(default_factory=PPOCfg)


def task_defaults(task_id: str) -> TrainDefaults:
    return getattr(get_task(task_id).task_cls, "train_defaults", TrainDefaults())


def resolve(cfg: TrainCfg) -> TrainCfg:
    """Fill unset fields from the task's training defaults."""
    d = task_defaults(cfg.task)
    return dataclasses.replace(
        cfg,
        num_envs=cfg.num_envs or d.num_envs,
        max_iterations=cfg.max_iterations or d.max_iterations,
    )


def train(cfg: TrainCfg, env_overrides: dict | None = None) -> dict:
    """Train, save the run directory, evaluate; returns the evaluation summary."""
    cfg = resolve(cfg)
    from rsl_rl.runners import OnPolicyRunner
    from worldloop.envs.rsl_rl_adapter import RslRlVecEnv

    spec = get_task(cfg.task)
    task_cfg = build_cfg(spec.cfg_cls, env_overrides or {})
    torch.manual_seed(cfg.seed)
    env = BatchedEnv(cfg.task, num_envs=cfg.num_envs, backend=cfg.backend, device=cfg.device, seed=cfg.seed, cfg=task_cfg)
    device = str(env.device)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = Path(cfg.log_root) / cfg.task / (stamp + (f"_{cfg.run_name}" if cfg.run_name else ""))
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = {"train": dataclasses.asdict(cfg), "env": dataclasses.asdict(task_cfg), "backend": env.backend_name}
    (run_dir / "config.json").write_text(json.dumps(resolved, indent=2))

    vec = RslRlVecEnv(env, log_interval=cfg.agent.num_steps_per_env)
    runner = OnPolicyRunner(vec, cfg.agent.to_rsl_rl(save_interval=cfg.save_interval, run_name=cfg.run_name),
                            log_dir=str(run_dir), device=device)
    print(f"[worldloop] training {cfg.task} on {env.backend_name}/{device}: {cfg.num_envs} envs x "
          f"{cfg.max_iterations} iterations -> {run_dir}", flush=True)
    t0 = time.perf_counter()
    runner.learn(num_learning_iterations=cfg.max_iterations, init_at_random_ep_len=True)
    train_s = time.perf_counter() - t0
    env_steps = cfg.max_iterations * cfg.num_envs * cfg.agent.num_steps_per_env

    summary: dict = {"task": cfg.task, "train_seconds": round(train_s, 1), "env_steps": env_steps,
                     "run_dir": str(run_dir)}
    if cfg.eval_episodes > 0:
        policy = runner.get_inference_policy(device=device)
        result = evaluate(env, lambda obs: policy(_td(obs, env.num_envs)), cfg.eval_episodes)
        summary.update(dataclasses.asdict(result))
        print(f"[worldloop] {cfg.task}: success {100 * result.success_rate:.1f}% "
              f"(95% CI {100 * result.success_ci95[0]:.1f}-{100 * result.success_ci95[1]:.1f}%) over "
              f"{result.episodes} episodes, mean return {result.mean_return:.2f}; "
              f"trained {env_steps:,} env steps in {train_s / 60:.1f} min", flush=True)
    (run_dir / "eval.json").write_text(json.dumps(summary, indent=2))
    env.close()
    return summary


def _td(obs: dict[str, torch.Tensor], n: int):
    from tensordict import TensorDict

    return TensorDict(obs, batch_size=[n])


def build_parser(task_id: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="worldloop train",
        description="Train a PPO policy on a registered task. Every option below maps to a config field.",
    )
    add_dataclass_args(p, TrainCfg, "")
    add_dataclass_args(p, get_task(task_id).cfg_cls, "env", skip={"weights"})
    return p


def main(argv: list[str] | None = None) -> dict:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default=TrainCfg.task)
    known, _ = pre.parse_known_args(argv)
    get_task(known.task)  # an unknown id fails here, naming the registered ones
    ns = build_parser(known.task).parse_args(argv)
    top = {k: v for k, v in overrides_for(ns, "").items() if k != "env"}
    cfg = apply_overrides(TrainCfg(), top)
    return train(cfg, overrides_for(ns, "env"))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
