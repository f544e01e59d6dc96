"""Isaac Lab's registered tasks as worldloop task ids: ``isaaclab:<Isaac Lab id>``.

    env = worldloop.make("isaaclab:Isaac-Cartpole-v0", num_envs=256, device="cpu")
    worldloop train --task isaaclab:Isaac-Cartpole-v0 --num-envs 1024 --device cpu

Any manager-based task Isaac Lab 3.0 registers with gymnasium (``import isaaclab_tasks``, plus
third-party packages registered through its ``isaaclab.tasks`` entry point) is reachable. Isaac Lab
3.0 dropped the ``-v0`` suffix of its ids (``Isaac-Cartpole``); a versioned id whose unversioned
form is registered resolves to it, so the ids of Isaac Lab 2.x keep working.

Each id gets a config class (:class:`~worldloop.envs.isaaclab.env.IsaacLabCfg` with the task's own
``decimation``, ``episode_length_s`` and reward ``weights`` as defaults) and training defaults read
from the task's rsl-rl runner config (``rsl_rl_cfg_entry_point``: rollout length, iterations,
network sizes, PPO settings), so ``worldloop train`` starts from Isaac Lab's recipe. The env is
:class:`~worldloop.envs.isaaclab.env.IsaacLabEnv`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Any

import torch

from worldloop.envs.isaaclab.env import IsaacLabCfg, IsaacLabEnv, import_isaaclab, reward_weights
from worldloop.envs.task import Task, TrainDefaults
from worldloop.tasks.registry import ISAACLAB_PREFIX, TaskSpec


def pole_upright(env: Any, terminated: torch.Tensor, max_angle: float = 0.2) -> torch.Tensor:
    """``Isaac-Cartpole`` success: not terminated and the pole within ``max_angle`` [rad] of upright.

    Isaac Lab's own metric (the episode timed out without the cart leaving its +-3 m bounds) holds
    for random actions too, since a fallen pole does not end the episode; this is worldloop's
    ``Cartpole-v0`` success instead, so success measures balancing on both."""
    robot = env.scene["robot"]
    angle = robot.data.joint_pos.torch[:, robot.joint_names.index("cart_to_pole")]
    return ~terminated & (torch.cos(angle) > math.cos(max_angle))


SUCCESS = {"Isaac-Cartpole": pole_upright}
"""Success functions for Isaac Lab ids whose own notion does not measure the task (see :func:`pole_upright`);
the others use their ``success`` termination term, or *survived* (:mod:`worldloop.envs.isaaclab.env`)."""


class IsaacLabTask(Task[IsaacLabCfg]):
    """Base of the task classes of Isaac Lab ids: it carries the id's training defaults and summary;
    the env is Isaac Lab's own (:class:`IsaacLabEnv`), so this class is never instantiated."""


def resolve_isaaclab_id(name: str) -> str:
    """The registered Isaac Lab id for ``name`` (``Isaac-Cartpole-v0`` -> ``Isaac-Cartpole`` in Isaac Lab 3.0).

    Raises:
        KeyError: no such task; the message lists Isaac Lab's registered ids that look alike.
    """
    import gymnasium as gym

    import_isaaclab()
    if name in gym.registry:
        return name
    bare = re.sub(r"-v\d+$", "", name)
    if bare in gym.registry:
        return bare
    stem = bare.split("-")[1] if bare.count("-") >= 1 else bare
    near = sorted(k for k in gym.registry if k.startswith("Isaac") and stem.lower() in k.lower())
    ids = near or sorted(k for k in gym.registry if k.startswith("Isaac-"))
    raise KeyError(f"no Isaac Lab task {name!r}; registered ids like it: {', '.join(ids[:30])}")


def _train_defaults(name: str, num_envs: int) -> TrainDefaults:
    """PPO settings of the task's rsl-rl runner config, as :class:`~worldloop.policies.ppo.PPOCfg` field names."""
    from isaaclab_tasks.utils import load_cfg_from_registry, resolve_presets

    try:
        runner = resolve_presets(load_cfg_from_registry(name, "rsl_rl_cfg_entry_point"))
    except (ValueError, KeyError, AttributeError):
        return TrainDefaults(num_envs=num_envs)
    agent: dict[str, Any] = {"num_steps_per_env": int(runner.num_steps_per_env)}
    actor, critic = getattr(runner, "actor", None), getattr(runner, "critic", None)
    if actor is not None and critic is not None:
        agent["actor_hidden_dims"] = tuple(actor.hidden_dims)
        agent["critic_hidden_dims"] = tuple(critic.hidden_dims)
        agent["activation"] = actor.activation
        agent["obs_normalization"] = bool(actor.obs_normalization)
        dist = getattr(actor, "distribution_cfg", None)
        if dist is not None and hasattr(dist, "init_std"):
            agent["init_noise_std"] = float(dist.init_std)
    alg = runner.algorithm
    for key in ("learning_rate", "schedule", "desired_kl", "num_learning_epochs", "num_mini_batches", "clip_param",
                "gamma", "lam", "entropy_coef", "value_loss_coef", "max_grad_norm"):  # fmt: skip
        value = getattr(alg, key, None)
        if value is not None:
            agent[key] = value
    return TrainDefaults(num_envs=num_envs, max_iterations=int(runner.max_iterations), agent=agent)


@functools.cache
def isaaclab_spec(task_id: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``isaaclab:<Isaac Lab id>``: config class and training defaults of that task.

    Raises:
        ImportError: Isaac Lab is not installed (the message says how to set it up).
        KeyError: an Isaac Lab id that is not registered.
        ValueError: a direct-workflow task (no managers to read).
    """
    import_isaaclab()  # first: without Isaac Lab, its error says how to set it up
    from isaaclab.envs import ManagerBasedRLEnvCfg
    from isaaclab_tasks.utils import parse_env_cfg

    name = resolve_isaaclab_id(task_id.removeprefix(ISAACLAB_PREFIX))
    env_cfg = parse_env_cfg(name, device="cpu", num_envs=1, overrides=["physics=newton_mjwarp"])
    if not isinstance(env_cfg, ManagerBasedRLEnvCfg):
        raise ValueError(
            f"{name} is a {type(env_cfg).__name__} (direct workflow): the isaaclab backend runs manager-based "
            "Isaac Lab tasks, whose reward, termination and observation managers it reads"
        )
    task_weights = reward_weights(env_cfg)
    task_decimation, task_length = int(env_cfg.decimation), float(env_cfg.episode_length_s)
    slug = re.sub(r"\W", "_", name)

    @dataclasses.dataclass(kw_only=True)
    class IsaacLabTaskCfg(IsaacLabCfg):
        scene: str = name
        """The Isaac Lab task (gymnasium id) whose scene and managers are built."""
        decimation: int = task_decimation
        """Physics steps per policy step (Isaac Lab's ``decimation``; default the task's)."""
        episode_length_s: float = task_length
        """[s] episodes are truncated after this much simulated time (default the task's)."""
        weights: dict[str, float] = dataclasses.field(default_factory=lambda: dict(task_weights))
        """Weight of each term of Isaac Lab's reward manager, by term name (default the task's)."""

    cfg_cls = IsaacLabTaskCfg
    cfg_cls.__name__ = f"IsaacLabCfg_{slug}"
    cfg_cls.__doc__ = f"Settings of Isaac Lab's {name} run through worldloop (defaults: the task's own)."
    scene_envs = int(env_cfg.scene.num_envs)
    task_cls = type(
        f"IsaacLab_{slug}",
        (IsaacLabTask,),
        {
            "__doc__": f"Isaac Lab's {name} (kit-less, Newton physics), as {env_cfg.__class__.__name__} defines it.",
            "__module__": __name__,
            "train_defaults": _train_defaults(name, scene_envs),
        },
    )

    def make_env(cfg, *, num_envs, backend, device, seed, task_id):
        if backend not in ("auto", "isaaclab"):
            raise ValueError(f"{task_id} runs on the isaaclab backend (backend 'auto' or 'isaaclab'), got {backend!r}")
        return IsaacLabEnv(
            cfg, num_envs=num_envs, device=device, seed=seed, task_id=task_id, success_fn=SUCCESS.get(name)
        )

    return TaskSpec(task_id, task_cls, cfg_cls, make_env=make_env)
