"""The `Loop`: a policy and a batched env exchanging compute for data.

    loop = Loop(env, policy)
    for rollout in loop.run(num_steps=1000, chunk=100):   # Rollout batches of [time, env] tensors
        ...
    loop.env_steps_per_s

Evaluation, play, benchmarking, the scripted-expert measurement and data collection are all this
loop with different consumers; PPO training drives the env through rsl-rl's runner, the one other
place an env is stepped.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from worldloop.envs.batched_env import BatchedEnv

Policy = Callable[[dict[str, torch.Tensor]], torch.Tensor]
"""Maps observation groups ``{"policy": (num_envs, n), "critic": (num_envs, m)}`` to actions
``(num_envs, action_dim)``."""


@dataclass
class Rollout:
    """``T`` consecutive steps of every env; tensors are ``[time, env, ...]`` on the env's device.

    Row ``t`` is one transition: the state and observation *before* action ``t``, the action, and what
    followed it. Where ``terminated | truncated`` the env was reset inside the step, so row ``t + 1``
    starts a new episode (``episode_start``) and ``next_obs`` holds the finished episode's last
    observation. A field not asked for in :meth:`Loop.run` is ``None``."""

    obs: torch.Tensor | None = None
    """``(T, N, n_policy)`` policy observation before each action."""
    critic_obs: torch.Tensor | None = None
    """``(T, N, n_critic)`` critic (privileged) observation before each action."""
    actions: torch.Tensor | None = None
    """``(T, N, action_dim)`` actions executed (clipped to ``cfg.action_clip``)."""
    ctrl: torch.Tensor | None = None
    """``(T, N, nu)`` actuator controls the actions became (after latency and noise terms)."""
    rewards: torch.Tensor | None = None
    """``(T, N)`` weighted reward of each step."""
    terminated: torch.Tensor | None = None
    """``(T, N)`` bool: a terminal state was reached."""
    truncated: torch.Tensor | None = None
    """``(T, N)`` bool: the episode hit its time limit (or its physics diverged)."""
    success: torch.Tensor | None = None
    """``(T, N)`` bool: the task is solved after the step."""
    next_obs: torch.Tensor | None = None
    """``(T, N, n_policy)`` policy observation after each action, before any autoreset."""
    next_critic_obs: torch.Tensor | None = None
    """``(T, N, n_critic)`` critic observation after each action, before any autoreset."""
    reward_terms: dict[str, torch.Tensor] | None = None
    """``{name: (T, N)}`` unweighted reward terms."""
    qpos: torch.Tensor | None = None
    """``(T, N, nq)`` joint positions before each action (MuJoCo conventions)."""
    qvel: torch.Tensor | None = None
    """``(T, N, nv)`` joint velocities before each action."""
    episode_start: torch.Tensor | None = None
    """``(T, N)`` bool: the step is the first of an episode."""

    @property
    def num_steps(self) -> int:
        """``T``, the steps in this batch."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                return v.shape[0]
            if isinstance(v, dict) and v:
                return next(iter(v.values())).shape[0]
        return 0


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Rollout))
"""Names of every :class:`Rollout` field."""


class Loop:
    """Drive ``env`` with ``policy`` and account for throughput.

    ``env_steps`` and ``seconds`` accumulate over every :meth:`run`; ``seconds`` counts the policy and
    the env step only, not the consumer's work between yielded batches nor recording."""

    def __init__(self, env: BatchedEnv, policy: Policy) -> None:
        self.env = env
        self.policy = policy
        self.env_steps = 0
        """Env steps taken (``num_envs`` per policy step)."""
        self.seconds = 0.0
        """[s] wall clock spent in the policy and ``env.step``."""

    @property
    def env_steps_per_s(self) -> float:
        """Env steps per second of policy + env time (0 before any step)."""
        return self.env_steps / self.seconds if self.seconds > 0 else 0.0

    @torch.inference_mode()
    def run(
        self, num_steps: int, *, chunk: int = 64, fields: Iterable[str] | None = None, reset: bool = False
    ) -> Iterator[Rollout]:
        """Step every env ``num_steps`` times, yielding :class:`Rollout` batches of up to ``chunk`` steps.

        Args:
            num_steps: policy steps of every env (>= 0).
            chunk: steps per yielded batch (>= 1); the last batch may be shorter.
            fields: the :class:`Rollout` fields to record (default: all); ``()`` records nothing,
                for pure throughput.
            reset: reset every env first; otherwise continue from the env's current state (its first
                observation after construction is a reset).

        Raises:
            ValueError: a negative ``num_steps``, ``chunk < 1`` or an unknown field name.
        """
        if num_steps < 0 or chunk < 1:
            raise ValueError(f"num_steps must be >= 0 and chunk >= 1, got {num_steps} and {chunk}")
        want = FIELDS if fields is None else tuple(fields)
        unknown = sorted(set(want) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown Rollout field(s) {unknown}; allowed: {', '.join(FIELDS)}")
        env = self.env
        obs = env.reset()[0] if reset else env.get_observations()
        start = (env.episode_length_buf == 0).clone() if "episode_start" in want else None
        buf: dict[str, list] = {k: [] for k in want}
        for t in range(num_steps):
            before = {}
            if "qpos" in buf:
                before["qpos"] = env.qpos.clone()
            if "qvel" in buf:
                before["qvel"] = env.qvel.clone()
            t0 = time.perf_counter()
            actions = self.policy(obs)
            next_obs, reward, terminated, truncated, info = env.step(actions)
            self.seconds += time.perf_counter() - t0
            self.env_steps += env.num_envs
            if buf:
                got = {
                    "obs": obs["policy"],
                    "critic_obs": obs.get("critic"),
                    "rewards": reward,
                    "terminated": terminated,
                    "truncated": truncated,
                    "success": info["success"],
                    "next_obs": info["final_obs"]["policy"],
                    "next_critic_obs": info["final_obs"].get("critic"),
                    "reward_terms": info["reward_terms"],
                    "episode_start": start,
                    **before,
                }
                for k in buf:
                    # The env updates these two in place: copy them.
                    v = env.actions.clone() if k == "actions" else env.ctrl.clone() if k == "ctrl" else got[k]
                    buf[k].append(v)
                if start is not None:
                    start = terminated | truncated
            obs = next_obs
            if t == num_steps - 1 or (t + 1) % chunk == 0:
                yield Rollout(**{k: _stack(v) for k, v in buf.items()})
                buf = {k: [] for k in buf}


def _stack(rows: list) -> torch.Tensor | dict[str, torch.Tensor]:
    if rows and isinstance(rows[0], dict):
        return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    return torch.stack(rows)


@dataclass
class EvalResult:
    episodes: int
    success_rate: float
    success_ci95: tuple[float, float]
    """Wilson score interval of the success rate."""
    mean_return: float
    mean_length: float
    """[policy steps] mean episode length."""
    return_ci95: tuple[float, float] = (math.nan, math.nan)
    """95% normal-approximation interval of the mean return (:func:`mean_interval`); nan below 2 episodes."""


@dataclass
class Episodes:
    """Per-episode outcomes of :func:`run_episodes`, in the order the episodes ended; CPU tensors ``(n,)``."""

    env_ids: torch.Tensor
    """``(n,)`` long: the env each episode ran in."""
    success: torch.Tensor
    """``(n,)`` bool: success at the episode's last step."""
    returns: torch.Tensor
    """``(n,)`` float64: undiscounted sum of the weighted rewards."""
    lengths: torch.Tensor
    """``(n,)`` long [policy steps]."""


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends: no rounding past p
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def mean_interval(values: torch.Tensor, z: float = 1.96) -> tuple[float, float]:
    """95% interval of the mean of ``values`` ``(n,)``: mean +- z * s / sqrt(n), with ``s`` the sample
    standard deviation (normal approximation, close to the t interval for n >= 30); ``(nan, nan)`` for
    n < 2."""
    n = values.numel()
    if n < 2:
        return (math.nan, math.nan)
    v = values.double()
    mean, half = float(v.mean()), z * float(v.std()) / math.sqrt(n)
    return (mean - half, mean + half)


def run_episodes(env: BatchedEnv, policy: Policy, num_episodes: int) -> Episodes:
    """``num_episodes`` complete episodes, each env's first episode per round.

    Every round resets all envs and runs the :class:`Loop` until each env has finished one episode,
    so episodes are never cut short and no env contributes twice in a round; the last round's
    episodes beyond ``num_episodes`` are dropped (those that ended last). With ``num_episodes`` a
    multiple of ``num_envs`` every env runs the same number of episodes.

    Raises:
        ValueError: ``num_episodes < 1``.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    loop = Loop(env, policy)
    ids, successes, returns, lengths = [], [], [], []
    n = 0
    while n < num_episodes:
        active = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)
        ret = torch.zeros(env.num_envs, dtype=torch.float64, device=env.device)
        length = torch.zeros(env.num_envs, dtype=torch.long, device=env.device)
        steps = loop.run(
            env.max_episode_length, chunk=1, fields=("rewards", "terminated", "truncated", "success"), reset=True
        )
        for r in steps:
            ret += r.rewards[0] * active
            length += active
            done = (r.terminated[0] | r.truncated[0]) & active
            if bool(done.any()):
                ids.append(done.nonzero()[:, 0].cpu())
                successes.append(r.success[0][done].cpu())
                returns.append(ret[done].cpu())
                lengths.append(length[done].cpu())
                n += ids[-1].numel()
                active &= ~done
            if not bool(active.any()):
                steps.close()
                break
    return Episodes(
        env_ids=torch.cat(ids)[:num_episodes],
        success=torch.cat(successes)[:num_episodes],
        returns=torch.cat(returns)[:num_episodes],
        lengths=torch.cat(lengths)[:num_episodes],
    )


def summarize(episodes: Episodes) -> EvalResult:
    """Success rate (Wilson interval), mean return (normal interval) and mean length of ``episodes``."""
    n = episodes.success.numel()
    s = int(episodes.success.sum())
    return EvalResult(
        episodes=n,
        success_rate=s / n if n else 0.0,
        success_ci95=wilson_interval(s, n),
        mean_return=float(episodes.returns.double().mean()) if n else math.nan,
        mean_length=float(episodes.lengths.double().mean()) if n else math.nan,
        return_ci95=mean_interval(episodes.returns),
    )


def evaluate(env: BatchedEnv, policy: Policy, num_episodes: int) -> EvalResult:
    """Success rate over ``num_episodes`` complete episodes, each env's first episode per round
    (:func:`run_episodes`). Success is read at the episode's last step.

    Raises:
        ValueError: ``num_episodes < 1``.
    """
    return summarize(run_episodes(env, policy, num_episodes))
