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
    d = a - b  # sqrt(sum d^2): linalg.vector_norm is ~15x slower on the envs' transposed (N, 3) positions
    return (d * d).sum(-1).sqrt()


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


def joint_limit_violation(
    q: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, margin: float = 0.0
) -> torch.Tensor:
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


def ramp(x: torch.Tensor, start: float, end: float) -> torch.Tensor:
    """``clamp((x - start) / (end - start), 0, 1)`` ``(N,)``: progress of a scalar from ``start`` to ``end``
    (same unit as ``x``), e.g. a drawer's opening [m] or a peg's insertion depth [m]."""
    return ((x - start) / (end - start)).clamp(0.0, 1.0)


def lift_height(z: torch.Tensor, rest_z: float, height: float) -> torch.Tensor:
    """Fraction ``(N,)`` in ``[0, 1]`` of the lift height ``height`` [m] an object at height ``z`` ``(N,)`` [m]
    has risen above ``rest_z`` [m]. Pass the highest height at which the object can rest on the table by
    itself (a cube standing on a corner: half edge x sqrt(3)); from its plain resting height, a policy
    learns to tip the object onto an edge for a share of the reward."""
    return ramp(z, rest_z, rest_z + height)


def box_lowest_z(pos: torch.Tensor, quat: torch.Tensor, half_extents: tuple[float, float, float]) -> torch.Tensor:
    """Height ``(N,)`` [m] of the lowest point of a box with centre ``pos`` ``(N, 3)`` [m], orientation ``quat``
    ``(N, 4)`` [wxyz] and half edges ``half_extents`` [m] (its own x, y, z): the centre's height minus the
    half extents projected on the world's vertical, ``sum_i h_i |R_zi|``. On the table it is the table's
    height however the box is turned (flat, on an edge or a corner), so a ramp on it pays only for
    clearance: tipping the box earns nothing, and every millimetre of a real lift counts."""
    w, x, y, z = quat.unbind(-1)
    r_zx, r_zy, r_zz = 2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)
    hx, hy, hz = half_extents
    return pos[:, 2] - hx * r_zx.abs() - hy * r_zy.abs() - hz * r_zz.abs()


def held_clearance(
    grasped: torch.Tensor,
    pos: torch.Tensor,
    quat: torch.Tensor,
    half_extents: tuple[float, float, float],
    height: float,
) -> torch.Tensor:
    """``(N,)`` in ``[0, 1]``: where ``grasped`` ``(N,)``, the fraction of ``height`` [m] the lowest point of a box
    (:func:`box_lowest_z`) is above the table; 0 on the table however the box is turned, 0 without a grasp."""
    return grasped * ramp(box_lowest_z(pos, quat, half_extents), 0.0, height)


def centred_grasp(grasped: torch.Tensor, along: torch.Tensor, std: float = 0.015) -> torch.Tensor:
    """``(N,)`` in ``[0, 1]``: ``grasped`` ``(N,)`` weighted by ``1 - tanh(|along| / std)``, with ``along`` ``(N,)``
    [m] the object's centre along the fingers from the pads' middle: an object held low in the pads, fingertips on
    the table, earns little, so pressing it down does not pay."""
    return grasped * (1.0 - torch.tanh(along.abs() / std))


def orientation_error(quat: torch.Tensor, quat_target: torch.Tensor) -> torch.Tensor:
    """Angle ``(N,)`` [rad] in ``[0, pi]`` of the rotation between ``(N, 4)`` unit quaternions ``[w, x, y, z]``."""
    # 2 atan2(|v|, |w|) of the relative rotation: exact near zero, where 2 acos(|q . q_t|) loses
    # ~1e-3 rad to float32 rounding.
    w = (quat * quat_target).sum(-1)
    v = torch.linalg.vector_norm(
        quat_target[..., :1] * quat[..., 1:]
        - quat[..., :1] * quat_target[..., 1:]
        - torch.linalg.cross(quat_target[..., 1:], quat[..., 1:]),
        dim=-1,
    )
    return 2.0 * torch.atan2(v, w.abs())


def axis_alignment(axis: torch.Tensor, target_axis: torch.Tensor) -> torch.Tensor:
    """``(1 + cos(theta)) / 2`` ``(N,)`` in ``[0, 1]`` between ``(N, 3)`` unit vectors (1 when aligned)."""
    return upright((axis * target_axis).sum(-1))


def grasped(
    obj_pos_g: torch.Tensor, opening: torch.Tensor, closing: torch.Tensor, half_width: float, tol: float = 0.006
) -> torch.Tensor:
    """``1.0`` ``(N,)`` where a parallel gripper holds an object, judged from geometry alone (no contact
    data, so the same on every backend): the fingers are commanded closed (``closing`` ``(N,)`` bool),
    each finger's opening ``opening`` ``(N,)`` [m] was stopped within ``tol`` [m] of the object's half
    width ``half_width`` [m] across the fingers, and the object's centre ``obj_pos_g`` ``(N, 3)`` [m] in
    the grip frame (x across the pads, y the closing direction, z along the fingers) lies between the
    pads: ``|y| < tol`` and ``|x|, |z| < half_width``."""
    centred = obj_pos_g[:, 1].abs() < tol
    between = centred & (obj_pos_g[:, 0].abs() < half_width) & (obj_pos_g[:, 2].abs() < half_width)
    stopped = (opening - half_width).abs() < tol
    return (closing & stopped & between).float()
