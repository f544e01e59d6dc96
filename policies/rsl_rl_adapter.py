"""rsl-rl-lib's ``VecEnv`` contract over a :class:`BatchedEnv`."""

from __future__ import annotations

import dataclasses
import math

import torch
from rsl_rl.env import VecEnv  # noqa: TID253 - this module is imported only when training
from tensordict import TensorDict

from worldloop.envs.batched_env import BatchedEnv


class RslRlVecEnv(VecEnv):
    """Wraps a :class:`BatchedEnv` for ``rsl_rl.runners.OnPolicyRunner``.

    ``dones = terminated | truncated``; ``extras["time_outs"] = truncated & ~terminated`` so PPO
    bootstraps through time limits but never from a terminal state (an episode that terminates on
    its last step is both terminated and truncated, and is not a time-out). Every ``log_interval`` steps (the runner's
    ``num_steps_per_env``) the env's episode statistics are put in ``extras["log"]``, where the
    runner's logger writes them to tensorboard with the randomization ranges in force: one host
    sync per iteration, not per step.

    ``reward_scale`` multiplies the reward PPO learns from (:attr:`PPOCfg.reward_scale`); the
    episode statistics in the log stay in the task's own units.
    """

    def __init__(self, env: BatchedEnv, log_interval: int, reward_scale: float = 1.0) -> None:
        if not (math.isfinite(reward_scale) and reward_scale > 0):
            raise ValueError(f"reward_scale must be a positive finite number, got {reward_scale!r}")
        self.env = env
        self.num_envs = env.num_envs
        self.num_actions = env.action_dim
        self.max_episode_length = env.max_episode_length
        self.device = env.device
        self.cfg = dataclasses.asdict(env.cfg)
        self.log_interval = log_interval
        self.reward_scale = float(reward_scale)
        self._steps = 0
        self.last_stats: dict[str, float] = {}

    @property
    def episode_length_buf(self) -> torch.Tensor:
        return self.env.episode_length_buf

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.env.episode_length_buf.copy_(value)

    def _td(self, obs: dict[str, torch.Tensor]) -> TensorDict:
        return TensorDict(obs, batch_size=[self.num_envs], device=self.device)

    def get_observations(self) -> TensorDict:
        return self._td(self.env.get_observations())

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        extras: dict = {"time_outs": truncated & ~terminated}
        self._steps += 1
        if self._steps % self.log_interval == 0:
            stats = self.env.pop_episode_stats()
            self.last_stats = stats
            extras["log"] = {_log_key(k): v for k, v in stats.items()}
            # The randomization ranges in force (they move when a curriculum widens them).
            for term, (lo, hi) in self.env.randomizer.ranges().items():
                extras["log"][f"Randomization/{term}_low"] = lo
                extras["log"][f"Randomization/{term}_high"] = hi
        if self.reward_scale != 1.0:
            reward = reward * self.reward_scale
        return self._td(obs), reward, (terminated | truncated).long(), extras


def _log_key(k: str) -> str:
    if k.startswith("term/"):
        return "Episode_Reward/" + k[len("term/") :]
    return "Episode/" + k
