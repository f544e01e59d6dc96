"""The contract every physics backend implements.

A backend steps ``num_envs`` copies of one MJCF scene. Its state is exposed in MuJoCo's
conventions whatever the engine underneath, so tasks, kinematics and randomization are written
once:

- ``qpos`` ``(num_envs, nq)``: joint positions; a free joint is ``[x, y, z, qw, qx, qy, qz]`` in the
  world frame [m, unit quaternion].
- ``qvel`` ``(num_envs, nv)``: joint velocities; a free joint is ``[v_world(3), w_body(3)]``
  [m/s, rad/s] (linear velocity of the body origin in the world frame, angular velocity in the
  body frame), exactly as ``MjData.qvel``.
- ``ctrl`` ``(num_envs, nu)``: actuator controls in the units of the MJCF actuators (position
  targets [rad] or [m] for position actuators).

Both tensors are float32 on ``device`` and are updated in place by :meth:`step` and
:meth:`set_state`; consumers may keep references to them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import mujoco
import torch


class Backend(ABC):
    """Batched physics for one compiled MJCF scene."""

    name: str
    """Registry name of the backend (``"mujoco"``, ``"newton"``)."""

    num_envs: int
    device: torch.device
    mj_model: mujoco.MjModel
    """The nominal compiled scene: names, sizes, ranges and nominal physical parameters."""

    qpos: torch.Tensor
    """``(num_envs, nq)`` joint positions, MuJoCo conventions."""

    qvel: torch.Tensor
    """``(num_envs, nv)`` joint velocities, MuJoCo conventions."""

    @property
    def physics_dt(self) -> float:
        """Physics time step [s]."""
        return float(self.mj_model.opt.timestep)

    @abstractmethod
    def step(self, ctrl: torch.Tensor, nsteps: int) -> torch.Tensor:
        """Hold ``ctrl`` ``(num_envs, nu)`` for ``nsteps`` physics steps in every env.

        Returns:
            ``(num_envs,)`` bool: envs whose physics diverged (non-finite state or a solver
            reset). Their state is undefined until :meth:`set_state` writes it.
        """

    @abstractmethod
    def set_state(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Write ``qpos`` ``(num_envs, nq)`` and ``qvel`` ``(num_envs, nv)`` into the envs where
        ``mask`` ``(num_envs,)`` is true; other envs are untouched. Actuator and solver history
        of the written envs is cleared."""

    def close(self) -> None:
        """Release threads and device memory."""
