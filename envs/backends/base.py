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

Per-env physical parameters (domain randomization, sweeps, system identification) are read and
written by MuJoCo field name with :meth:`Backend.get_model_params` / :meth:`Backend.set_model_params`,
for the fields in :data:`MODEL_PARAM_FIELDS`, with the same meaning on every backend.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod

import mujoco
import torch

MODEL_PARAM_FIELDS = (
    "body_mass",
    "body_ipos",
    "body_inertia",
    "geom_friction",
    "geom_size",
    "dof_damping",
    "dof_armature",
    "dof_frictionloss",
    "actuator_gainprm",
    "actuator_biasprm",
    "opt.gravity",
)
"""``MjModel`` fields every backend can set per env, named and laid out as in ``MjModel``: ``body_mass``
``(nbody,)`` [kg], ``body_ipos`` ``(nbody, 3)`` [m] (centre of mass in the body frame), ``body_inertia``
``(nbody, 3)`` [kg m^2] (principal moments, axes ``body_iquat``), ``geom_friction`` ``(ngeom, 3)``
(sliding, torsional, rolling), ``geom_size`` ``(ngeom, 3)`` [m], ``dof_damping`` ``(nv,)`` [N m s/rad],
``dof_armature`` ``(nv,)`` [kg m^2], ``dof_frictionloss`` ``(nv,)`` [N m], ``actuator_gainprm`` /
``actuator_biasprm`` ``(nu, 10)``, ``opt.gravity`` ``(3,)`` [m/s^2]."""


def model_param(mj_model: mujoco.MjModel, field: str):
    """The array of ``field`` (one of :data:`MODEL_PARAM_FIELDS`) in one ``MjModel`` (a view)."""
    if field not in MODEL_PARAM_FIELDS:
        raise ValueError(f"unknown model parameter {field!r}; allowed: {', '.join(MODEL_PARAM_FIELDS)}")
    return functools.reduce(getattr, field.split("."), mj_model)


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

    def set_model_params(self, field: str, mask: torch.Tensor, values: torch.Tensor) -> None:
        """Write per-env values of the ``MjModel`` field ``field`` (see :data:`MODEL_PARAM_FIELDS`)
        into the envs where ``mask`` ``(num_envs,)`` is true; other envs are untouched.

        ``values`` is ``(num_envs, *shape)`` with ``shape`` the field's shape in one ``MjModel``
        (rows of unmasked envs are ignored). The values hold from the next :meth:`step` on, with the
        constants MuJoCo derives from them (``mj_setConst``: subtree masses, inverse weights, geom
        bounds) recomputed; the state is not changed."""
        raise NotImplementedError(f"the {self.name} backend has no per-env model parameters")

    def get_model_params(self, field: str) -> torch.Tensor:
        """``(num_envs, *shape)`` float32 copy of each env's current value of ``field``."""
        raise NotImplementedError(f"the {self.name} backend has no per-env model parameters")

    def get_state(self):
        """``(num_envs, nstate)`` copy of each env's full physics state in the engine's own layout
        (``mjSTATE_FULLPHYSICS`` on ``mujoco``). Backends without an exact state vector raise
        :class:`NotImplementedError`."""
        raise NotImplementedError(f"the {self.name} backend does not expose its full physics state")

    def close(self) -> None:  # noqa: B027 - optional hook, most backends have nothing to release
        """Release threads and device memory."""
