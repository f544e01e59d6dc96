"""PPO settings as a dataclass, translated to rsl-rl-lib's runner configuration."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch


@dataclass(kw_only=True)
class PPOCfg:
    """rsl-rl-lib PPO with MLP actor and critic."""

    num_steps_per_env: int = 24
    """Policy steps collected per env and iteration (the rollout horizon)."""
    actor_hidden_dims: tuple[int, ...] = (256, 128, 64)
    """Hidden layer widths of the actor MLP."""
    critic_hidden_dims: tuple[int, ...] = (256, 128, 64)
    """Hidden layer widths of the critic MLP."""
    activation: str = "elu"
    """Activation of both MLPs."""
    init_noise_std: float = 1.0
    """Initial standard deviation of the Gaussian action distribution."""
    obs_normalization: bool = True
    """Normalize observations with running statistics (saved in checkpoints and exports)."""
    learning_rate: float = 1e-3
    """Adam learning rate (adapted to ``desired_kl`` when ``schedule="adaptive"``)."""
    schedule: Literal["adaptive", "fixed"] = "adaptive"
    """``"adaptive"`` (KL-driven) or ``"fixed"`` learning rate."""
    desired_kl: float = 0.01
    """Target KL divergence per update for the adaptive schedule."""
    num_learning_epochs: int = 5
    """Passes over each rollout batch."""
    num_mini_batches: int = 4
    """Mini-batches per epoch."""
    clip_param: float = 0.2
    """PPO ratio clip."""
    gamma: float = 0.99
    """Discount factor per policy step."""
    lam: float = 0.95
    """GAE lambda."""
    entropy_coef: float = 0.005
    """Entropy bonus weight."""
    value_loss_coef: float = 1.0
    """Value loss weight."""
    max_grad_norm: float = 1.0
    """Gradient norm clip."""
    clip_value_loss: bool = True
    """Clip each value update to ``clip_param`` around the rollout's values (rsl-rl's ``use_clipped_value_loss``)."""
    mixed_precision: Literal["off", "auto", "on"] = "off"
    """Run the PPO update's forward and backward passes under bfloat16 autocast (rsl-rl's
    ``use_mixed_precision``): the same samples, minibatches and losses, with the matrix products in
    bfloat16 (8-bit mantissa) and the weights, Adam and the loss reductions in float32. ``auto``: on where
    the hardware multiplies bfloat16 natively (:func:`native_bf16`), where it makes the update of a
    1,024-env Franka task 1.5x faster (BENCHMARKS.md, "PPO update speed"); without it bfloat16 is
    emulated and slower. Rollouts and exports stay float32; the world-action policy's update ignores it."""
    critic_warmup_iterations: int = 0
    """Iterations at the start of a run whose update trains only the critic (the actor acts and stays as it
    is): for PPO from an actor that already works (``worldloop train --init``), whose critic starts
    untrained and whose first advantages would otherwise move the actor at random."""
    critic_warmup_learning_rate: float = 1e-3
    """Adam learning rate of the critic during the warm-up (an optimizer of its own, so that a run can give PPO
    a small ``learning_rate`` for a cloned actor and still fit the critic quickly)."""
    reward_scale: float = 1.0
    """Factor on the env reward before PPO sees it (logged episode returns and terms stay unscaled).
    rsl-rl clips each value update to ``clip_param`` in absolute units, so a critic facing returns in
    the hundreds can only creep toward them; Isaac Lab and mjlab weight rewards per second (times the
    step ``dt``) for the same reason. Setting the step ``dt`` here does the same without changing the
    task's reward."""

    def to_rsl_rl(self, *, save_interval: int, run_name: str = "", device: str = "cpu") -> dict:
        """The ``train_cfg`` dict ``rsl_rl.runners.OnPolicyRunner`` expects for a learner on ``device``."""
        mixed = self.mixed_precision == "on" or (self.mixed_precision == "auto" and native_bf16(device))
        distribution = {"class_name": "GaussianDistribution", "init_std": self.init_noise_std, "std_type": "scalar"}
        return {
            "num_steps_per_env": self.num_steps_per_env,
            "save_interval": save_interval,
            "run_name": run_name,
            "logger": "tensorboard",
            "critic_warmup_iterations": self.critic_warmup_iterations,
            "critic_warmup_learning_rate": self.critic_warmup_learning_rate,
            "obs_groups": {"actor": ["policy"], "critic": ["critic"]},
            "algorithm": {
                "class_name": "PPO",
                "learning_rate": self.learning_rate,
                "schedule": self.schedule,
                "desired_kl": self.desired_kl,
                "num_learning_epochs": self.num_learning_epochs,
                "num_mini_batches": self.num_mini_batches,
                "clip_param": self.clip_param,
                "gamma": self.gamma,
                "lam": self.lam,
                "entropy_coef": self.entropy_coef,
                "value_loss_coef": self.value_loss_coef,
                "max_grad_norm": self.max_grad_norm,
                "use_clipped_value_loss": self.clip_value_loss,
                "use_mixed_precision": mixed,
            },
            "actor": {
                "class_name": "MLPModel",
                "hidden_dims": list(self.actor_hidden_dims),
                "activation": self.activation,
                "obs_normalization": self.obs_normalization,
                "distribution_cfg": distribution,
            },
            "critic": {
                "class_name": "MLPModel",
                "hidden_dims": list(self.critic_hidden_dims),
                "activation": self.activation,
                "obs_normalization": self.obs_normalization,
            },
        }


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware: a CUDA GPU that supports bfloat16,
    or a CPU with AVX512-BF16 or AMX-BF16 (read from ``/proc/cpuinfo``; False where that file is missing)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def ppo_cfg(overrides: Mapping[str, Any] | None = None, *, source: str = "overrides") -> PPOCfg:
    """``PPOCfg()`` with ``overrides`` (field name -> value, e.g. a task's ``train_defaults.agent``).

    Raises:
        KeyError: a name that is no field of :class:`PPOCfg`; the message names ``source`` and the fields.
    """
    overrides = dict(overrides or {})
    names = [f.name for f in dataclasses.fields(PPOCfg)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise KeyError(f"{source}: unknown PPOCfg field(s) {unknown}; PPOCfg fields: {', '.join(names)}")
    return dataclasses.replace(PPOCfg(), **overrides)
