"""Reward terms: pure, unweighted, batched.

Each term maps tensors with leading dimension ``num_envs`` to a ``(num_envs,)`` tensor. Weights
live in the task config, so the same term serves every task and every term is logged raw.
Positive terms are "more is better" kernels in ``[0, 1]``; penalties are non-negative magnitudes
that a task weights with a negative number.
"""

from __future__ import annotations

import torch


def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distance ``(N,)`` [m] between points ``(N, 3)``."""
    return torch.linalg.vector_norm(a - b, dim=-1)


def distance_tanh(a: torch.Tensor, b: torch.Tensor, std: float) -> torch.Tensor:
    """``1 - tanh(|a - b| / std)`` in ``(0, 1]``: 1 at contact, ~0.24 at ``d = std`` [m]."""
    return 1.0 - torch.tanh(distance(a, b) / std)


def distance_exp(a: torch.Tensor, b: torch.Tensor, std: float) -> torch.Tensor:
    """``exp(-|a - b|^2 / (2 std^2))`` in ``(0, 1]``, a Gaussian kernel of width ``std`` [m]."""
    return torch.exp(-distance(a, b).square() / (2.0 * std * std))


def action_rate_l2(actions: torch.Tensor, prev_actions: torch.Tensor) -> torch.Tensor:
    """``|a_t - a_{t-1}|^2`` ``(N,)``: penalize jerky commands (smooth actions transfer better)."""
    return (actions - prev_actions).square().sum(-1)


def action_l2(actions: torch.Tensor) -> torch.Tensor:
    """``|a_t|^2`` ``(N,)``."""
    return actions.square().sum(-1)


def joint_vel_l2(qvel: torch.Tensor) -> torch.Tensor:
    """``|qd|^2`` ``(N,)`` [rad^2/s^2] over the given joint velocity columns ``(N, k)``."""
    return qvel.square().sum(-1)


def joint_limit_violation(q: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """Sum over joints of how far ``q`` ``(N, k)`` is inside ``margin`` [rad] of a limit ``(k,)``."""
    below = (lower + margin - q).clamp(min=0.0)
    above = (q - (upper - margin)).clamp(min=0.0)
    return (below + above).sum(-1)


def upright(cos_angle: torch.Tensor) -> torch.Tensor:
    """``(1 + cos(theta)) / 2`` in ``[0, 1]``: 1 when an axis is aligned with its target."""
    return 0.5 * (1.0 + cos_angle)


def success_bonus(success: torch.Tensor) -> torch.Tensor:
    """``1.0`` where ``success`` ``(N,)`` bool holds, else ``0.0``."""
    return success.float()
