"""MuJoCo C backend: the fast path on CPUs.

Every env's full physics state lives in one preallocated ``(num_envs, nstate)`` float64 array.
A step hands that array to :mod:`mujoco.rollout`, which steps all envs on a persistent C thread
pool (the GIL is released for the whole batch) and writes the new states into a second
preallocated array; no Python code runs per env. Torch sees the arrays through
``torch.from_numpy`` views.

Per-env physical parameters (:meth:`MujocoBackend.set_model_params`, for domain randomization)
switch the stepping to :class:`mujoco.batch.Batch`, whose "expanded" model fields hold one value per
simulation over one shared model, with ``mj_setConst`` rerun per env where needed. The same
``(num_envs, nstate)`` state array goes in and out, warm start zeroed per policy step as with
``mujoco.rollout``. Why not one ``MjModel`` copy per env (``per_env_models``, which ``mujoco.rollout``
accepts): each env then reads its whole model cold from memory, measured +25-30% physics time at
1,024 Franka envs on this 2-core machine, against +2-3% for the expanded fields.
"""

from __future__ import annotations

import copy
import os

import mujoco
import numpy as np
import torch
from mujoco import rollout

from .base import Backend, model_param

_FULLPHYSICS = mujoco.mjtState.mjSTATE_FULLPHYSICS
_SETCONST_FIELDS = frozenset(("body_mass", "body_ipos", "body_inertia", "dof_armature", "geom_size"))
"""Fields whose derived constants (subtree mass, inverse weights, geom bounds) need ``mj_setConst``."""
_COMPONENTS = [1 << i for i in range(mujoco.mjtState.mjNSTATE.value)]
"""State components in the order ``mj_getState`` lays them out."""


def default_num_threads() -> int:
    """Physics threads: ``WORLDLOOP_NUM_THREADS`` if set, else every core this process may use."""
    env = os.environ.get("WORLDLOOP_NUM_THREADS")
    if env:
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class MujocoBackend(Backend):
    """``num_envs`` MuJoCo C simulations of one scene, stepped by ``mujoco.rollout`` (by
    ``mujoco.batch.Batch`` once :meth:`set_model_params` gave them per-env parameters)."""

    name = "mujoco"

    def __init__(
        self,
        mj_model: mujoco.MjModel,
        xml_path: str | None = None,
        *,
        num_envs: int,
        device: str | torch.device = "cpu",
        seed: int = 0,
        num_threads: int | None = None,
    ) -> None:
        del xml_path, seed  # the compiled model is all this backend needs
        self.mj_model = mj_model
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.num_threads = num_threads or default_num_threads()
        m = mj_model
        self.nstate = mujoco.mj_stateSize(m, _FULLPHYSICS)
        # Column layout of an mjSTATE_FULLPHYSICS vector: [time, qpos, qvel, act, ...].
        self._qpos_cols = slice(1, 1 + m.nq)
        self._qvel_cols = slice(1 + m.nq, 1 + m.nq + m.nv)
        self._act_cols = slice(1 + m.nq + m.nv, 1 + m.nq + m.nv + m.na)

        data = mujoco.MjData(m)
        mujoco.mj_forward(m, data)
        init = np.empty(self.nstate)
        mujoco.mj_getState(m, data, init, _FULLPHYSICS)
        self._state = np.tile(init, (num_envs, 1))
        self._ctrl: np.ndarray | None = None  # (num_envs, nsteps, nu), sized on first step
        self._out: np.ndarray | None = None  # (num_envs, nsteps, nstate)
        self._datas = [mujoco.MjData(m) for _ in range(self.num_threads)]
        # One model reference per env; per_env_models() swaps in real copies when needed.
        self.models: list[mujoco.MjModel] = [m] * num_envs
        self._own_models = False
        self._batch = None  # mujoco.batch.Batch, made by the first set_model_params
        self._expanded: dict[str, np.ndarray] = {}  # its per-env model fields, (num_envs, ...) live arrays
        self._stale_const = np.zeros(num_envs, dtype=bool)  # envs needing mj_setConst before a step
        self._runner = rollout.Rollout(nthread=self.num_threads)

        self._state_t = torch.from_numpy(self._state)
        self.qpos = self._state_t[:, self._qpos_cols].to(self.device, torch.float32)
        self.qvel = self._state_t[:, self._qvel_cols].to(self.device, torch.float32)

    def get_state(self) -> np.ndarray:
        """``(num_envs, nstate)`` float64 copy of every env's ``mjSTATE_FULLPHYSICS`` vector (time,
        qpos, qvel, actuator activations, ...; ``mujoco.mj_stateSize``): the exact start state for
        ``mujoco.rollout`` or ``mujoco.mj_setState``."""
        return self._state.copy()

    # ------------------------------------------------------------------ stepping
    def step(self, ctrl: torch.Tensor, nsteps: int) -> torch.Tensor:
        if self._out is None or self._out.shape[1] != nsteps:
            self._ctrl = np.empty((self.num_envs, nsteps, self.mj_model.nu))
            self._out = np.empty((self.num_envs, nsteps, self.nstate))
            self._sensor = np.empty((self.num_envs, nsteps, self.mj_model.nsensordata))
        # The control is held for all substeps (zero-order hold over the decimation).
        self._ctrl[:] = ctrl.detach().to("cpu", torch.float64).numpy()[:, None, :]
        t_before = self._state[:, 0].copy()
        if self._batch is not None:
            self._step_batch(nsteps)
        else:
            self._runner.rollout(
                self.models,
                self._datas,
                self._state,
                self._ctrl,
                control_spec=mujoco.mjtState.mjSTATE_CTRL.value,
                nstep=nsteps,
                state=self._out,
                sensordata=self._sensor,
                skip_checks=True,
            )
            np.copyto(self._state, self._out[:, -1])
        diverged = ~np.isfinite(self._state).all(axis=1)
        # MuJoCo resets a diverging simulation to qpos0 itself (time restarts at 0): count it too.
        diverged |= self._state[:, 0] < t_before + 0.5 * nsteps * self.physics_dt
        self._refresh()
        return torch.from_numpy(diverged).to(self.device)

    def set_state(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        idx = mask.to("cpu").numpy().nonzero()[0]
        if idx.size == 0:
            return
        s = self._state[idx]
        s[:] = 0.0  # time, act, history and the rest restart from zero
        s[:, self._qpos_cols] = qpos.detach().to("cpu", torch.float64).numpy()[idx]
        s[:, self._qvel_cols] = qvel.detach().to("cpu", torch.float64).numpy()[idx]
        self._state[idx] = s
        self._refresh()

    def _refresh(self) -> None:
        self.qpos.copy_(self._state_t[:, self._qpos_cols])
        self.qvel.copy_(self._state_t[:, self._qvel_cols])

    # ------------------------------------------------------------------ per-env models
    def per_env_models(self) -> list[mujoco.MjModel]:
        """Give every env its own ``MjModel`` copy (once) and return them. Slower than
        :meth:`set_model_params` at many envs (module docstring); the two do not combine."""
        if self._batch is not None:
            raise RuntimeError("per_env_models() cannot follow set_model_params(): use one or the other")
        if not self._own_models:
            self.models = [copy.copy(self.mj_model) for _ in range(self.num_envs)]
            self._own_models = True
        return self.models

    def set_model_params(self, field: str, mask: torch.Tensor, values: torch.Tensor) -> None:
        model_param(self.mj_model, field)  # an unknown field is refused before anything changes
        idx = mask.to("cpu").numpy().nonzero()[0]
        if idx.size == 0:
            return
        if field not in self._expanded:
            self._expanded[field] = self._use_batch().expand(field)
        self._expanded[field][idx] = values.detach().to("cpu", torch.float64).numpy()[idx]
        if field in _SETCONST_FIELDS:
            self._stale_const[idx] = True

    def get_model_params(self, field: str) -> torch.Tensor:
        value = self._expanded.get(field)
        if value is None:
            value = torch.as_tensor(model_param(self.mj_model, field), dtype=torch.float32)
            return value.expand(self.num_envs, *value.shape).to(self.device, copy=True)
        return torch.as_tensor(value, dtype=torch.float32, device=self.device).clone()

    def _use_batch(self):
        """The :class:`mujoco.batch.Batch` that steps envs with per-env model fields (made once)."""
        if self._own_models:
            raise RuntimeError("set_model_params() cannot follow per_env_models(): use one or the other")
        if self._batch is None:
            try:
                from mujoco.batch import Batch
            except ImportError:
                raise ImportError(
                    f"per-env model parameters (domain randomization of masses, friction, gains, damping, ...) "
                    f"need mujoco.batch, which this mujoco {mujoco.__version__} lacks (an environment that pins an "
                    "older mujoco, such as Isaac Lab's); use a mujoco with mujoco.batch (worldloop's own "
                    "environment), or run without model randomization (`worldloop bench --no-randomization`, "
                    "`worldloop.make(..., randomization={})`)"
                ) from None

            m = self.mj_model
            batch = Batch(m, self.num_envs, nthread=self.num_threads)
            batch.reset(stage=mujoco.mjtStage.mjSTAGE_NONE.value)  # mocap, eq_active: the model's
            # Where our mjSTATE_FULLPHYSICS columns, the warm start and ctrl sit in Batch's rows.
            cols: dict[int, list[int]] = {}
            offset = 0
            for bit in _COMPONENTS:
                size = mujoco.mj_stateSize(m, bit)
                cols[bit] = list(range(offset, offset + size))
                offset += size
            full = _FULLPHYSICS.value
            self._batch_state = [c for bit in _COMPONENTS if bit & full for c in cols[bit]]
            self._batch_warmstart = cols[mujoco.mjtState.mjSTATE_WARMSTART.value]
            self._batch_ctrl = cols[mujoco.mjtState.mjSTATE_CTRL.value]
            self._batch = batch
        return self._batch

    def _step_batch(self, nsteps: int) -> None:
        """``nsteps`` substeps of every env on the batch, from and into ``self._state``."""
        batch = self._batch
        if self._stale_const.any():
            batch.set_const(self._stale_const.nonzero()[0])
            self._stale_const[:] = False
        rows = batch.state
        rows[:, self._batch_state] = self._state
        rows[:, self._batch_warmstart] = 0.0  # as mujoco.rollout: each policy step starts without one
        rows[:, self._batch_ctrl] = self._ctrl[:, 0]
        # Like mujoco.rollout, a simulation whose warning counters rise (a divergence) stops stepping.
        batch.rollout(nsteps, record=())
        np.copyto(self._state, rows[:, self._batch_state])

    def close(self) -> None:
        self._runner.close()
