"""What a task is: a config dataclass plus a class with observations, rewards, success and resets.

A task never steps physics and never loops over envs. It reads state from the env (``env.qpos``,
``env.site_pos_w("grip")``, ...) as ``(num_envs, ...)`` tensors and returns tensors of the same
batch size. See ``tasks/franka_reach.py`` for a complete example and the README for a walk-through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

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
    """Domain randomization terms by name (``envs/randomization.py``); tasks override this with
    their preset; ``--rand NAME.FIELD=VALUE`` on the command line."""


C = TypeVar("C", bound=TaskCfg)


class Task(Generic[C]):
    """Base class of a task. Subclasses implement the methods below on batched tensors."""

    def __init__(self, cfg: C, env: BatchedEnv) -> None:
        self.cfg = cfg
        self.env = env
        self.num_envs = env.num_envs
        self.device = env.device

    # ---- actions --------------------------------------------------------------------------
    action_term = None
    """An object with ``action_dim`` and ``actions_to_ctrl(actions)`` (e.g. ``envs.actions.FrankaArm``)
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
