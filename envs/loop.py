"""The `Loop`: a policy and a batched env exchanging compute for data.

    loop = Loop(env, policy)
    for rollout in loop.run(num_steps=1000, chunk=100):   # Rollout batches of [time, env] tensors
        ...
    loop.env_steps_per_s

Training, data collection, evaluation and benchmarking are all this loop with different consumers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from worldloop.envs.batched_env import BatchedEnv

Policy = Callable[[dict[str, torch.Tensor]], torch.Tensor]
"""Maps observation groups to actions ``(num_envs, action_dim)``."""


@dataclass
class Rollout:
    """``chunk`` consecutive steps of every env; tensors are ``[time, env, ...]`` on the env's device."""

    obs: torch.Tensor
    """``(T, N, n_policy)`` policy observation before each action."""
    actions: torch.Tensor
    """``(T, N, action_dim)`` clipped actions executed."""
    rewards: torch.Tensor
    """``(T, N)``."""
    terminated: torch.Tensor
    """``(T, N)`` bool."""
    truncated: torch.Tensor
    """``(T, N)`` bool."""
    next_obs: torch.Tensor
    """``(T, N, n_policy)`` observation after each action, *before* any autoreset (``final_obs``)."""
    success: torch.Tensor
    """``(T, N)`` bool."""


class Loop:
    """Drive ``env`` with ``policy`` and account for throughput."""

    def __init__(self, env: BatchedEnv, policy: Policy) -> None:
        self.env = env
        self.policy = policy
        self.env_steps = 0
        self.seconds = 0.0

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / self.seconds if self.seconds > 0 else 0.0

    @torch.inference_mode()
    def run(self, num_steps: int, chunk: int = 64) -> Iterator[Rollout]:
        """Step every env ``num_steps`` times, yielding :class:`Rollout` batches of ``chunk`` steps."""
        env = self.env
        obs = env.get_observations()
        buf: dict[str, list[torch.Tensor]] = {k: [] for k in Rollout.__dataclass_fields__}
        for t in range(num_steps):
            t0 = time.perf_counter()
            actions = self.policy(obs)
            next_obs, reward, terminated, truncated, info = env.step(actions)
            self.seconds += time.perf_counter() - t0
            self.env_steps += env.num_envs
            for k, v in (
                ("obs", obs["policy"]),
                ("actions", env.actions.clone()),
                ("rewards", reward),
                ("terminated", terminated),
                ("truncated", truncated),
                ("next_obs", info["final_obs"]["policy"]),
                ("success", info["success"]),
            ):
                buf[k].append(v)
            obs = next_obs
            if len(buf["obs"]) == chunk or t == num_steps - 1:
                yield Rollout(**{k: torch.stack(v) for k, v in buf.items()})
                buf = {k: [] for k in buf}


@dataclass
class EvalResult:
    episodes: int
    success_rate: float
    success_ci95: tuple[float, float]
    """Wilson score interval of the success rate."""
    mean_return: float
    mean_length: float


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@torch.inference_mode()
def evaluate(env: BatchedEnv, policy: Policy, num_episodes: int) -> EvalResult:
    """Success rate over ``num_episodes`` complete episodes, each env's first episode per round.

    Every round resets all envs and runs until each has finished one episode, so episodes are
    never cut short and no env contributes twice in a round. Success is read at the episode's last
    step."""
    successes, returns, lengths = [], [], []
    while len(successes) < num_episodes:
        obs, _ = env.reset()
        active = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)
        ret = torch.zeros(env.num_envs, device=env.device)
        length = torch.zeros(env.num_envs, device=env.device)
        for _ in range(env.max_episode_length):
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            ret += reward * active
            length += active
            done = (terminated | truncated) & active
            if bool(done.any()):
                successes += info["success"][done].tolist()
                returns += ret[done].tolist()
                lengths += length[done].tolist()
                active &= ~done
            if not bool(active.any()):
                break
    n = num_episodes
    s = int(sum(successes[:n]))
    return EvalResult(
        episodes=n,
        success_rate=s / n,
        success_ci95=wilson_interval(s, n),
        mean_return=float(sum(returns[:n]) / n),
        mean_length=float(sum(lengths[:n]) / n),
    )
