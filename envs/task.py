"""The task contract: a config dataclass plus a class with observations, rewards, success and resets.

A task never steps physics and never loops over envs. It reads state from the env (``env.qpos``,
``env.site_pos_w("grip")``, ...) as ``(num_envs, ...)`` tensors and returns tensors of the same
batch size. :class:`BatchedEnv` drives a task through the members of :class:`Task` only; the
optional ones (``expert``, ``target_pos_w``, ``train_defaults``, ``action_term``) have defaults here.
Task files live in ``worldloop/tasks`` (or your own module) and register themselves there; see
``tasks/franka_reach.py`` for a complete example and ``docs/new_task.md`` for a walk-through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch

from worldloop.envs.randomization import RandTerm

if TYPE_CHECKING:
    from worldloop.envs.batched_env import BatchedEnv


@dataclass(kw_only=True)
class TaskCfg:
    """Settings every task has. Task configs subclass this once and add their own fields."""

    scene: str
    """MJCF scene: a file name in ``worldloop/assets`` or a path to your own file."""
    decimation: int = 4
    """Physics steps per policy step; the policy runs at ``1 / (decimation * timestep)`` Hz."""
    episode_length_s: float = 5.0
    """[s] episodes are truncated after this much simulated time."""
    action_clip: float = 1.0
    """Actions are clipped to ``[-action_clip, action_clip]`` before the task maps them to controls."""
    weights: dict[str, float] = field(default_factory=dict)
    """Reward weight per term name; the reward is ``sum(weights[k] * term_k)`` per policy step."""
    randomization: dict[str, RandTerm] = field(default_factory=dict)
    """Domain randomization terms by name (``envs/randomization/``); tasks override this with
    their preset; ``--rand NAME.FIELD=VALUE`` on the command line."""
    critic_randomization: tuple[str, ...] = ()
    """Names of physical randomization terms (model parameters, action latency) whose draws are appended to
    ``obs["critic"]``, in this order, one column per draw (factors of nominal for ``scale`` terms, steps for
    latency): the critic knows the physics the policy has to infer (asymmetric actor-critic, Pinto et al.,
    "Asymmetric Actor Critic for Image-Based Robot Learning", RSS 2018). ``obs["policy"]`` is unchanged. Named,
    not "all", so that an evaluation adding terms (a sweep, a held-out reality) keeps the critic's width."""


@dataclass(frozen=True, kw_only=True)
class TrainDefaults:
    """Training settings a task declares as plain data (``Task.train_defaults``); the learner reads them.

    ``agent`` holds overrides of the PPO configuration's fields by name (``worldloop.policies.ppo.PPOCfg``),
    e.g. ``{"init_noise_std": 0.4, "entropy_coef": 0.0}``; an unknown name is refused when a run is built."""

    num_envs: int = 1024
    """Envs stepped together in training."""
    max_iterations: int = 300
    """PPO iterations of a run."""
    agent: dict[str, Any] = field(default_factory=dict)
    """PPO settings that differ from ``PPOCfg``'s defaults, by field name."""


C = TypeVar("C", bound=TaskCfg)


class Task(Generic[C]):
    """Base class of a task. Subclasses implement the methods below on batched tensors."""

    train_defaults: TrainDefaults = TrainDefaults()
    """Training settings of this task (``worldloop train`` starts from them)."""

    def __init__(self, cfg: C, env: BatchedEnv) -> None:
        self.cfg = cfg
        self.env = env
        self.num_envs = env.num_envs
        self.device = env.device

    # ---- actions --------------------------------------------------------------------------
    action_term = None
    """An object with ``action_dim`` and ``actions_to_ctrl(actions)`` (e.g. ``tasks.robots.franka.FrankaArm``)
    that a task may set in ``__init__`` to take its action space from; ``None``: the default below."""

    @property
    def action_dim(self) -> int:
        """Size of the policy's action vector."""
        return self.action_term.action_dim if self.action_term is not None else self.env.nu

    def actions_to_ctrl(self, actions: torch.Tensor) -> torch.Tensor:
        """Map clipped actions ``(num_envs, action_dim)`` to actuator controls ``(num_envs, nu)``.

        Default: the ``action_term``'s mapping, or else actions in ``[-1, 1]`` span each actuator's
        control range."""
        if self.action_term is not None:
            return self.action_term.actions_to_ctrl(actions)
        lo, hi = self.env.ctrl_range[:, 0], self.env.ctrl_range[:, 1]
        return lo + 0.5 * (actions + 1.0) * (hi - lo)

    # ---- episode --------------------------------------------------------------------------
    def reset(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample initial ``(qpos (num_envs, nq), qvel (num_envs, nv))`` and task buffers for the envs
        where ``mask`` is true. Rows of unmasked envs are ignored; task buffers of unmasked envs must
        keep their values (update them with ``torch.where(mask, new, old)``)."""
        raise NotImplementedError

    def observe(self) -> dict[str, torch.Tensor]:
        """Observation groups: ``{"policy": (num_envs, n_p), "critic": (num_envs, n_c)}``."""
        raise NotImplementedError

    def rewards(self) -> dict[str, torch.Tensor]:
        """Unweighted reward terms ``{name: (num_envs,)}``; weights come from ``cfg.weights``."""
        raise NotImplementedError

    def success(self) -> torch.Tensor:
        """``(num_envs,)`` bool: the task is solved in this state. Kept apart from the reward."""
        raise NotImplementedError

    def terminated(self) -> torch.Tensor:
        """``(num_envs,)`` bool: the episode ends in a terminal state. Default: never."""
        return torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    # ---- optional members -----------------------------------------------------------------
    def expert(self) -> torch.Tensor:
        """Scripted actions ``(num_envs, action_dim)`` for the current state (demonstrations, and the
        proof that the task is well posed). Tasks without one raise :class:`NotImplementedError`."""
        raise NotImplementedError(f"{type(self).__name__} has no scripted expert")

    @classmethod
    def has_expert(cls) -> bool:
        """Whether the task overrides :meth:`expert`."""
        return cls.expert is not Task.expert

    target_pos_w: torch.Tensor | None = None
    """``(num_envs, 3)`` [m] world position of the task's goal (drawn in videos), or ``None``: no goal
    point. A task may assign a tensor in ``__init__``/``reset`` or define a property."""
