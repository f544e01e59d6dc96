"""Training from Python: a run's config (:class:`TrainCfg`), :func:`train`, and :func:`load_run`.

    from worldloop.policies.train import TrainCfg, train

    cfg = TrainCfg.from_task("Franka-Reach-v0", num_envs=256, max_iterations=150)
    summary = train(cfg)                                   # what eval.json holds
    summary = train(TrainCfg.from_run(summary["run_dir"], max_iterations=300))   # resume, longer

``worldloop train`` (``scripts/train.py``) parses the same :class:`TrainCfg` from the command line;
the run directory it writes is described in :mod:`worldloop.policies.run_dir`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import torch

from worldloop.envs.loop import evaluate
from worldloop.envs.task import TaskCfg
from worldloop.policies import run_dir
from worldloop.policies.ppo import PPOCfg, ppo_cfg
from worldloop.policies.world_action_cfg import WorldActionCfg
from worldloop.tasks import get_task, make

if TYPE_CHECKING:
    from collections.abc import Mapping

    from worldloop.envs.batched_env import BatchedEnv
    from worldloop.envs.loop import Policy
    from worldloop.envs.randomization import RandTerm
    from worldloop.policies.runner import Runner

Backend = Literal["auto", "mujoco", "newton", "isaaclab"]
"""Physics backends a run can use (``auto``: newton on CUDA, mujoco on CPU; isaaclab for ``isaaclab:`` task ids)."""

PolicyKind = Literal["mlp", "world-action"]
"""The policy PPO trains: rsl-rl's MLP actor-critic, or the world-action model with its world-model loss."""

TaskCfgT = TypeVar("TaskCfgT", bound=TaskCfg)


@dataclass(kw_only=True)
class TrainCfg(Generic[TaskCfgT]):
    """Train a PPO policy (rsl-rl-lib's OnPolicyRunner) on a registered task; the defaults are the task's."""

    task: str = "Franka-Reach-v0"
    """Registered task id (``worldloop list``); chosen first, it sets the defaults of every other option."""
    num_envs: int = 1024
    """Envs stepped together (per process); default: the task's training default."""
    max_iterations: int = 300
    """PPO iterations (each ``num_envs * agent.num_steps_per_env`` env steps); default: the task's."""
    backend: Backend = "auto"
    """Physics backend: auto (newton on CUDA, mujoco on CPU; isaaclab for isaaclab:<id> tasks), mujoco, newton
    or isaaclab."""
    device: str | None = None
    """Torch device for env and learner; default cuda if available else cpu."""
    seed: int = 0
    """Seed for the env generator and the network initialisation (plus the process rank)."""
    save_interval: int = 50
    """Iterations between checkpoints."""
    log_root: str = "runs"
    """Directory holding one folder per task and run."""
    run_name: str = ""
    """Suffix of the run folder name."""
    eval_episodes: int = 1000
    """Episodes of the final deterministic policy used to report success (0 skips)."""
    checkpoint_eval_episodes: int = 0
    """Episodes of the deterministic policy run at every checkpoint on envs of their own (another seed, from a
    reset), logged as ``Eval/success`` and ``Eval/return``; ``best.pt`` is then the checkpoint with the best of
    these instead of the best training success, which can rise while PPO fits the episodes in progress rather
    than improving the policy (BENCHMARKS.md, "Why the training statistics rise"). 0: off."""
    resume: str | None = None
    """Run directory to continue from its last checkpoint, with its saved config; only the budget may change."""
    agent: PPOCfg = field(default_factory=PPOCfg)
    """PPO settings; default: ``PPOCfg`` with the task's ``train_defaults.agent``."""
    policy: PolicyKind = "mlp"
    """mlp (rsl-rl's MLP actor-critic) or world-action (encoder, action head and world model, PPO plus a
    K-step latent prediction loss; its settings are ``--world-action.*``)."""
    world_action: WorldActionCfg = field(default_factory=WorldActionCfg)
    """World-action model and loss settings (used with ``--policy world-action``)."""
    init: str | None = None
    """Run directory (or checkpoint file) whose actor initializes this run's (``worldloop pretrain`` /
    ``finetune`` output, or a trained run of the same policy and task); training starts at iteration 0 with
    the action std at ``--agent.init-noise-std`` (behaviour cloning leaves the std untrained) and the actor's
    observation normalizer frozen at the loaded statistics. Pair it with ``--agent.critic-warmup-iterations``
    so that the untrained critic does not undo the actor, and a learning rate below PPO's 1e-3 (Adam's first
    steps move every weight by about the learning rate)."""
    env: TaskCfgT
    """The task's config: scene, rewards (``weights``), randomization terms, ..."""

    @classmethod
    def from_task(cls, task: str, **overrides: Any) -> TrainCfg:
        """The task's training defaults (``Task.train_defaults``) and config, with field ``overrides``.

        Raises:
            KeyError: an unknown task id, or a ``train_defaults.agent`` key that is no PPOCfg field.
        """
        spec = get_task(task)
        d = spec.task_cls.train_defaults
        agent = ppo_cfg(d.agent, source=f"{task}: {spec.task_cls.__name__}.train_defaults.agent")
        cfg = cls(task=task, num_envs=d.num_envs, max_iterations=d.max_iterations, agent=agent, env=spec.cfg_cls())
        return dataclasses.replace(cfg, **overrides)

    @classmethod
    def from_run(cls, run: str | Path, **overrides: Any) -> TrainCfg:
        """The config saved in run directory ``run``, set to resume it, with field ``overrides``."""
        return dataclasses.replace(run_dir.read_config(run), resume=str(run), **overrides)


EVAL_SEED_OFFSET = 1_000_003
"""The checkpoint-evaluation envs are seeded ``seed + EVAL_SEED_OFFSET``: episodes other than training's."""


def check_train_cfg(cfg: TrainCfg) -> TrainCfg:
    """Refuse run settings that cannot train, naming the option, before any env or run directory exists.

    Raises:
        ValueError: ``num_envs``, ``max_iterations`` or ``save_interval`` below 1, ``eval_episodes`` or
            ``checkpoint_eval_episodes`` below 0, a PPO setting out of its range (a learning rate, noise
            std, clip or KL target <= 0, ``gamma`` outside (0, 1], ...), or a task config field out of range
            (:func:`~worldloop.envs.batched_env.check_cfg`).
        TypeError: a task config field of the wrong type.
    """
    from worldloop.envs.batched_env import check_cfg

    checks = (("num_envs", 1), ("max_iterations", 1), ("save_interval", 1), ("eval_episodes", 0),
              ("checkpoint_eval_episodes", 0), ("agent.critic_warmup_iterations", 0))  # fmt: skip
    for name, low in checks:
        value = cfg
        for part in name.split("."):
            value = getattr(value, part)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            option = "--" + name.replace("_", "-")
            raise ValueError(f"TrainCfg.{name} ({option}) must be an integer >= {low}, got {value!r}")
    a = cfg.agent
    for name, ok, what in (
        ("learning_rate", a.learning_rate > 0, "> 0"),
        ("critic_warmup_learning_rate", a.critic_warmup_learning_rate > 0, "> 0"),
        ("init_noise_std", a.init_noise_std > 0, "> 0"),
        ("desired_kl", a.desired_kl > 0, "> 0"),
        ("clip_param", a.clip_param > 0, "> 0"),
        ("max_grad_norm", a.max_grad_norm > 0, "> 0"),
        ("reward_scale", a.reward_scale > 0, "> 0"),
        ("gamma", 0 < a.gamma <= 1, "in (0, 1]"),
        ("lam", 0 <= a.lam <= 1, "in [0, 1]"),
        ("entropy_coef", a.entropy_coef >= 0, ">= 0"),
        ("value_loss_coef", a.value_loss_coef >= 0, ">= 0"),
        ("num_learning_epochs", a.num_learning_epochs >= 1, ">= 1"),
        ("num_mini_batches", a.num_mini_batches >= 1, ">= 1"),
        ("num_steps_per_env", a.num_steps_per_env >= 1, ">= 1"),
        ("actor_hidden_dims", all(d >= 1 for d in a.actor_hidden_dims), "widths >= 1"),
        ("critic_hidden_dims", all(d >= 1 for d in a.critic_hidden_dims), "widths >= 1"),
    ):
        if not ok:  # NaN fails every comparison, so it is refused too
            option = "--agent." + name.replace("_", "-")
            raise ValueError(f"TrainCfg.agent.{name} ({option}) must be {what}, got {getattr(a, name)!r}")
    check_cfg(cfg.env)
    return cfg


def _bf16_update(alg, cfg) -> bool:
    """Whether the PPO update runs its products in bfloat16: the MLP update with ``mixed_precision`` on;
    the world-action policy's update ignores the setting (``PPOCfg.mixed_precision``)."""
    return cfg.policy != "world-action" and bool(getattr(alg, "use_mixed_precision", False))


def train(cfg: TrainCfg) -> dict:
    """Train (or resume ``cfg.resume``), write the run directory, evaluate the final policy.

    Returns the summary written to ``eval.json`` (``{}`` on ranks other than 0 of a distributed run).

    Raises:
        ConfigError: ``cfg.resume`` with settings other than ``max_iterations`` changed from the saved run's.
        ValueError: settings that cannot train (:func:`check_train_cfg`).
    """
    check_train_cfg(cfg)

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.resume:
        path = Path(cfg.resume)
        on_disk = run_dir.read_config(path)
        saved = dataclasses.replace(on_disk, resume=cfg.resume, max_iterations=cfg.max_iterations)
        changed = [f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(saved, f.name)]
        for group in ("env", "agent"):  # name the fields inside the nested configs
            if group in changed:
                changed.remove(group)
                a, b = getattr(cfg, group), getattr(saved, group)
                fields = dataclasses.fields(a)
                changed += [f"{group}.{f.name}" for f in fields if getattr(a, f.name) != getattr(b, f.name)]
        if changed:
            raise run_dir.ConfigError(
                f"--resume {path} continues the run with its saved config; only max_iterations may change, "
                f"not {changed}"
            )
    else:
        path = run_dir.new_run_dir(cfg.log_root, cfg.task, cfg.run_name)
    # Each process of a distributed run has its own envs and seed.
    seed = cfg.seed + rank
    torch.manual_seed(seed)
    env = make(cfg.task, num_envs=cfg.num_envs, backend=cfg.backend, device=cfg.device, seed=seed, cfg=cfg.env)
    device = str(env.device)
    if rank == 0 and not cfg.resume:
        run_dir.write_config(path, cfg, backend=env.backend_name)
    elif rank == 0 and cfg.max_iterations != on_disk.max_iterations:
        # A new budget is part of the run from now on: a later plain --resume continues towards it.
        run_dir.write_config(path, dataclasses.replace(cfg, resume=on_disk.resume), backend=env.backend_name)

    runner = make_runner(cfg, env, log_dir=str(path) if rank == 0 else None)
    if cfg.init and not cfg.resume:
        init_actor(runner, cfg.init, cfg)
    if cfg.resume:
        if rank == 0:
            run_dir.remove_temp_files(path)
        try:
            ckpt = run_dir.latest_checkpoint(path)
        except run_dir.CheckpointError:  # killed before its first checkpoint: start it again
            print(f"[worldloop] resuming {path}: no checkpoint yet, at iteration 0", flush=True)
        else:
            runner.load(str(ckpt))
            print(
                f"[worldloop] resuming {path} from {ckpt.name} at iteration {runner.current_learning_iteration}",
                flush=True,
            )
    if rank == 0 and runner.model_summary:
        print(runner.model_summary, end="", flush=True)
    if cfg.init:
        freeze_normalizer(runner.alg.actor)
    eval_env = None
    if cfg.checkpoint_eval_episodes > 0 and rank == 0:
        n = cfg.checkpoint_eval_episodes
        eval_env = make(cfg.task, num_envs=min(n, 1024), backend=cfg.backend, device=cfg.device,
                        seed=seed + EVAL_SEED_OFFSET, cfg=cfg.env)  # fmt: skip
        runner.checkpoint_eval = lambda: evaluate(eval_env, inference_policy(runner, eval_env.num_envs), n)
    remaining = cfg.max_iterations - runner.current_learning_iteration
    if rank == 0:
        print(
            f"[worldloop] training {cfg.task} on {env.backend_name}/{device}: {cfg.num_envs} envs x "
            f"{world} process(es) x {cfg.max_iterations} iterations"
            f"{', bfloat16 update' if _bf16_update(runner.alg, cfg) else ''} -> {path}",
            flush=True,
        )
    t0 = time.perf_counter()
    if remaining > 0:
        # A resumed run too starts its envs at random points of their episodes: started together, their
        # episodes end together and PPO's batches swing with them (BENCHMARKS.md, "Resuming").
        runner.learn(num_learning_iterations=remaining, init_at_random_ep_len=True)
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
        "run_dir": str(path),
    }
    if cfg.eval_episodes > 0:
        result = evaluate(env, inference_policy(runner, env.num_envs), cfg.eval_episodes)
        summary.update(dataclasses.asdict(result))
        print(
            f"[worldloop] {cfg.task}: success {100 * result.success_rate:.1f}% "
            f"(95% CI {100 * result.success_ci95[0]:.1f}-{100 * result.success_ci95[1]:.1f}%) over "
            f"{result.episodes} episodes, mean return {result.mean_return:.2f}; "
            f"trained {env_steps:,} env steps in {train_s / 60:.1f} min{' after resuming' if cfg.resume else ''}",
            flush=True,
        )
    if runner.checkpoint_evals:
        summary["checkpoint_evals"] = runner.checkpoint_evals
        best_it = max(runner.checkpoint_evals, key=lambda k: runner.checkpoint_evals[k]["success_rate"])
        summary["best_checkpoint"] = {"iteration": best_it, **runner.checkpoint_evals[best_it]}
    run_dir.write_eval(path, summary)
    env.close()
    if eval_env is not None:
        eval_env.close()
    return summary


def load_run(
    run: str | Path,
    *,
    checkpoint: str = "best",
    num_envs: int | None = None,
    backend: str | None = None,
    device: str | None = None,
    seed: int = 12345,
    randomization: Mapping[str, RandTerm | Mapping] | None = None,
    env: BatchedEnv | None = None,
) -> tuple[BatchedEnv, Runner]:
    """Rebuild a run's env from its saved config and load a checkpoint into its runner.

    ``checkpoint``: ``"best"``, ``"last"``, a file name in the run or a path
    (:func:`run_dir.find_checkpoint`); ``num_envs``, ``backend``, ``device``: the run's unless given;
    ``randomization``: terms replacing the run's ``env.randomization`` (e.g. parameters to sweep);
    ``env``: an env built elsewhere to load the policy for instead (another task with the run's
    observation and action sizes, e.g. its Isaac Lab counterpart; ``num_envs`` .. ``randomization``
    are then unused). Returns ``(env, runner)``."""
    cfg = run_dir.read_config(run)
    ckpt = run_dir.find_checkpoint(run, checkpoint)
    if env is None:
        env_cfg = cfg.env if randomization is None else dataclasses.replace(cfg.env, randomization=dict(randomization))
        env = make(
            cfg.task,
            num_envs=cfg.num_envs if num_envs is None else num_envs,
            backend=cfg.backend if backend is None else backend,
            device=cfg.device if device is None else device,
            seed=seed,
            cfg=env_cfg,
        )
    runner = make_runner(cfg, env)
    runner.load(str(ckpt))
    return env, runner


def make_runner(cfg: TrainCfg, env: BatchedEnv, log_dir: str | None = None) -> Runner:
    """The run's rsl-rl runner (:class:`~worldloop.policies.runner.Runner`) over ``env``, which it steps through
    :class:`~worldloop.policies.rsl_rl_adapter.RslRlVecEnv`; ``log_dir`` ``None`` writes no files."""
    from worldloop.policies.rsl_rl_adapter import RslRlVecEnv
    from worldloop.policies.runner import Runner

    vec = RslRlVecEnv(env, log_interval=cfg.agent.num_steps_per_env, reward_scale=cfg.agent.reward_scale)
    printed = io.StringIO()  # rsl-rl prints the models as it builds them: kept for train to show once it starts
    with contextlib.redirect_stdout(printed):
        runner = Runner(vec, rsl_rl_cfg(cfg, str(env.device)), log_dir=log_dir, device=str(env.device))
    runner.model_summary = printed.getvalue()
    return runner


def rsl_rl_cfg(cfg: TrainCfg, device: str = "cpu") -> dict:
    """The ``train_cfg`` rsl-rl's ``OnPolicyRunner`` gets for a run whose learner is on ``device`` (the env's):
    MLP PPO, or world-action PPO."""
    d = cfg.agent.to_rsl_rl(save_interval=cfg.save_interval, run_name=cfg.run_name, device=device)
    return cfg.world_action.apply(d) if cfg.policy == "world-action" else d


def init_actor(runner: Runner, source: str | Path, cfg: TrainCfg | None = None) -> None:
    """Load the actor weights of ``source`` (a run directory: its best checkpoint; or a checkpoint file)
    into ``runner``'s actor, which must have the same architecture; with ``cfg``, the action std then
    restarts at ``cfg.agent.init_noise_std``.

    Raises:
        CheckpointError: no checkpoint there, or one whose actor does not fit (the message says which
            weights, and with ``cfg`` and a run directory, which settings differ)."""
    from worldloop.policies.runner import load_checkpoint

    source = Path(source)
    ckpt = run_dir.find_checkpoint(source) if source.is_dir() else source
    data = load_checkpoint(ckpt, runner.device)
    own, theirs = runner.alg.actor.state_dict(), data["actor_state_dict"]
    mismatched = [f"{k} {tuple(v.shape)} here, {tuple(theirs[k].shape)} there" for k, v in own.items()
                  if k in theirs and tuple(theirs[k].shape) != tuple(v.shape)]  # fmt: skip
    missing, extra = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
    if mismatched or missing or extra:
        where = f"{source}/config.json" if source.is_dir() else "the run that wrote it"
        differ = _differing_settings(source, cfg) if cfg is not None and source.is_dir() else []
        raise run_dir.CheckpointError(
            f"--init {ckpt}: its actor does not fit this run's policy: "
            + "; ".join(
                part
                for part in (
                    f"{len(mismatched)} weight(s) of another shape ({', '.join(mismatched[:3])})" if mismatched else "",
                    f"missing {missing[:3]}" if missing else "",
                    f"unexpected {extra[:3]}" if extra else "",
                )
                if part
            )
            + (f". Settings that differ from {where}: {', '.join(differ)}" if differ else
               f". Use the same --policy, network sizes and --world-action.* settings as {where}, and a task "
               "with the same observations and actions")
        )  # fmt: skip
    runner.alg.actor.load_state_dict(theirs)
    dist = getattr(runner.alg.actor, "distribution", None)
    if cfg is not None and dist is not None:
        with torch.no_grad():
            if hasattr(dist, "std_param"):
                dist.std_param.fill_(cfg.agent.init_noise_std)
            elif hasattr(dist, "log_std_param"):
                dist.log_std_param.fill_(math.log(cfg.agent.init_noise_std))
    print(f"[worldloop] actor initialized from {ckpt}", flush=True)


def freeze_normalizer(model) -> None:
    """Stop ``model``'s observation normalizer (rsl-rl's ``EmpiricalNormalization``) from updating: an actor
    taken from another run (``--init``) was fitted to its statistics, and letting PPO's rollouts move them
    changes its actions (measured on a cloned Lift-v1 actor: 7 iterations of updates moved its actions by up
    to 0.066 on one axis, actions in [-1, 1], more than the PPO steps themselves; BENCHMARKS.md)."""
    norm = getattr(model, "obs_normalizer", None)
    if norm is not None and hasattr(norm, "until") and hasattr(norm, "count"):
        norm.until = int(norm.count)


def _differing_settings(source: Path, cfg: TrainCfg) -> list[str]:
    """``--option this-run vs source`` for the settings that shape the actor and differ."""
    try:
        src = run_dir.read_config(source)
    except (run_dir.ConfigError, OSError):
        return []
    pairs = [("--policy", cfg.policy, src.policy), ("--task", cfg.task, src.task),
             ("--agent.actor-hidden-dims", cfg.agent.actor_hidden_dims, src.agent.actor_hidden_dims)]  # fmt: skip
    if cfg.policy == "world-action" and src.policy == "world-action":
        for f in dataclasses.fields(cfg.world_action):
            pairs.append((f"--world-action.{f.name.replace('_', '-')}", getattr(cfg.world_action, f.name),
                          getattr(src.world_action, f.name)))  # fmt: skip

    def norm(v):
        return list(v) if isinstance(v, (list, tuple)) else v

    return [f"{name} {norm(a)} here, {norm(b)} there" for name, a, b in pairs if norm(a) != norm(b)]


def inference_policy(runner: Runner, num_envs: int) -> Policy:
    """An ``obs dict -> actions`` callable running the runner's deterministic actor."""
    from tensordict import TensorDict

    actor = runner.get_inference_policy(device=str(runner.device))
    return lambda obs: actor(TensorDict(obs, batch_size=[num_envs]))
