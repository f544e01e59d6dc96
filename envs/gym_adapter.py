"""gymnasium ``VectorEnv`` view of a :class:`BatchedEnv`.

    env = gymnasium.make("worldloop/Franka-Reach-v0", num_envs=64)   # or gymnasium.make_vec
    env = GymVectorEnv(worldloop.make("Franka-Reach-v0", num_envs=64))  # the same, from an env

Observations are the ``policy`` group as a NumPy array ``(num_envs, n)`` (``numpy=False`` keeps
torch tensors on the env's device), the ``critic`` group is in ``info["critic"]``. Autoreset is
gymnasium's ``SAME_STEP`` mode: an env whose episode ended returns its next episode's first
observation, and the last one is in ``info["final_obs"]`` (valid where ``info["_final_obs"]``).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from worldloop.envs.batched_env import BatchedEnv


class GymVectorEnv(VectorEnv, gym.Env):
    """A ``gymnasium.vector.VectorEnv``. It also counts as a ``gymnasium.Env`` so that plain
    ``gymnasium.make(id, num_envs=N)`` returns it (worldloop envs are batched by nature)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, env: BatchedEnv, *, numpy: bool = True) -> None:
        self.env = env
        self.numpy = numpy
        self.num_envs = env.num_envs
        obs = env.get_observations()["policy"]
        n_obs = obs.shape[-1]
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (n_obs,), np.float32)
        clip = env.cfg.action_clip
        self.single_action_space = gym.spaces.Box(-clip, clip, (env.action_dim,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)

    def _out(self, x: torch.Tensor):
        return x.detach().cpu().numpy() if self.numpy else x

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, _ = self.env.reset(seed=seed)
        return self._out(obs["policy"]), {"critic": self._out(obs["critic"])}

    def step(self, actions):
        actions = torch.as_tensor(actions, dtype=torch.float32, device=self.env.device)
        obs, reward, terminated, truncated, info = self.env.step(actions)
        done = terminated | truncated
        out_info = {
            "success": self._out(info["success"]),
            "critic": self._out(obs["critic"]),
            "final_obs": self._out(info["final_obs"]["policy"]),
            "_final_obs": self._out(done),
        }
        out_info.update({f"reward/{k}": self._out(v) for k, v in info["reward_terms"].items()})
        return self._out(obs["policy"]), self._out(reward), self._out(terminated), self._out(truncated), out_info

    def close(self, **kwargs) -> None:
        self.env.close()
