"""``worldloop train``: PPO (rsl-rl-lib's ``OnPolicyRunner``) on a registered task.

Run directory (``<log_root>/<task>/<date_time>[_<run_name>]/``):
    config.json             the resolved train, env and agent config (reloaded by ``play``)
    model_<it>.pt           checkpoints every ``save_interval`` iterations (atomic writes)
    last.pt, best.pt        the latest checkpoint, and the one with the best recent success rate
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
from worldloop.envs.randomization import add_rand_option, preset_with_overrides
from worldloop.policies.ppo import PPOCfg, TrainDefaults
from worldloop.scripts.config_cli import add_dataclass_args, apply_overrides, from_dict, overrides_for
from worldloop.tasks import TaskCfg, get_task


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
    resume: str | None = None
    """Run directory to continue from its last checkpoint, with the config saved there."""
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


def load_run_config(run_dir: str | Path) -> tuple[TrainCfg, TaskCfg]:
    """The resolved train and task configs saved in a run directory."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a worldloop run directory?")
    saved = json.loads(path.read_text())
    cfg = from_dict(TrainCfg, saved["train"])
    return cfg, from_dict(get_task(cfg.task).cfg_cls, saved["env"])


def train(cfg: TrainCfg, env_overrides: dict | None = None) -> dict:
    """Train (or resume), save the run directory, evaluate; returns the evaluation summary."""
    from worldloop.envs.rsl_rl_adapter import RslRlVecEnv
    from worldloop.policies.runner import Runner, latest_checkpoint

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.resume:
        run_dir = Path(cfg.resume)
        saved, task_cfg = load_run_config(run_dir)
        # Only the budget may change on resume; everything else is the saved run's.
        cfg = dataclasses.replace(saved, resume=cfg.resume, max_iterations=cfg.max_iterations or saved.max_iterations)
    else:
        cfg = resolve(cfg)
        task_cfg = build_cfg(get_task(cfg.task).cfg_cls, env_overrides or {})
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        run_dir = Path(cfg.log_root) / cfg.task / (stamp + (f"_{cfg.run_name}" if cfg.run_name else ""))
    # Each process of a distributed run has its own envs and seed.
    seed = cfg.seed + rank
    torch.manual_seed(seed)
    env = BatchedEnv(cfg.task, num_envs=cfg.num_envs, backend=cfg.backend, device=cfg.device, seed=seed, cfg=task_cfg)
    device = str(env.device)
    if rank == 0 and not cfg.resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        resolved = {"train": dataclasses.asdict(cfg), "env": dataclasses.asdict(task_cfg), "backend": env.backend_name}
        (run_dir / "config.json").write_text(json.dumps(resolved, indent=2))

    vec = RslRlVecEnv(env, log_interval=cfg.agent.num_steps_per_env, reward_scale=cfg.agent.reward_scale)
    runner = Runner(
        vec,
        cfg.agent.to_rsl_rl(save_interval=cfg.save_interval, run_name=cfg.run_name),
        log_dir=str(run_dir) if rank == 0 else None,
        device=device,
    )
    if cfg.resume:
        ckpt = latest_checkpoint(run_dir)
        runner.load(str(ckpt))
        print(
            f"[worldloop] resuming {run_dir} from {ckpt.name} at iteration {runner.current_learning_iteration}",
            flush=True,
        )
    remaining = cfg.max_iterations - runner.current_learning_iteration
    if rank == 0:
        print(
            f"[worldloop] training {cfg.task} on {env.backend_name}/{device}: {cfg.num_envs} envs x "
            f"{world} process(es) x {cfg.max_iterations} iterations -> {run_dir}",
            flush=True,
        )
    t0 = time.perf_counter()
    if remaining > 0:
        runner.learn(num_learning_iterations=remaining, init_at_random_ep_len=not cfg.resume)
    train_s = time.perf_counter() - t0
    env_steps = max(remaining, 0) * cfg.num_envs * cfg.agent.num_steps_per_env * world
    if world > 1:
        torch.distributed.destroy_process_group()
    if rank != 0:
        env.close()
        return {}

    summary: dict = {
        "task": cfg.task,
        "train_seconds": round(train_s, 1),
        "env_steps": env_steps,
        "env_steps_per_s": round(env_steps / max(train_s, 1e-9)),
        "processes": world,
        "run_dir": str(run_dir),
    }
    if cfg.eval_episodes > 0:
        policy = runner.get_inference_policy(device=device)
        result = evaluate(env, lambda obs: policy(_td(obs, env.num_envs)), cfg.eval_episodes)
        summary.update(dataclasses.asdict(result))
        print(
            f"[worldloop] {cfg.task}: success {100 * result.success_rate:.1f}% "
            f"(95% CI {100 * result.success_ci95[0]:.1f}-{100 * result.success_ci95[1]:.1f}%) over "
            f"{result.episodes} episodes, mean return {result.mean_return:.2f}; "
            f"trained {env_steps:,} env steps in {train_s / 60:.1f} min",
            flush=True,
        )
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
    add_rand_option(p)
    return p


def main(argv: list[str] | None = None) -> dict:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default=TrainCfg.task)
    known, _ = pre.parse_known_args(argv)
    get_task(known.task)  # an unknown id fails here, naming the registered ones
    ns = build_parser(known.task).parse_args(argv)
    rand = vars(ns).pop("rand", None)
    top = {k: v for k, v in overrides_for(ns, "").items() if k != "env"}
    cfg = apply_overrides(TrainCfg(task=known.task, agent=task_defaults(known.task).ppo), top)
    env = overrides_for(ns, "env")
    if rand:
        env["randomization"] = preset_with_overrides(get_task(known.task).cfg_cls, rand)
    return train(cfg, env)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
