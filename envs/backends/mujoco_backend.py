"""MuJoCo C backend: the fast path on CPUs.

Every env's full physics state lives in one preallocated ``(num_envs, nstate)`` float64 array.
A step hands that array to :mod:`mujoco.rollout`, which steps all envs on a persistent C thread
pool (the GIL is released for the whole batch) and writes the new states into a second
preallocated array; no Python code runs per env. Torch sees the arrays through
``torch.from_numpy`` views.

Per-env physical parameters (for domain randomization) are per-env ``MjModel`` copies, which
``mujoco.rollout`` accepts as a sequence; until a term needs them, all envs share one model.
:meth:`MujocoBackend.set_model_params` writes them and reruns ``mj_setConst`` on the changed copies
before the next step. The copies cost step time (each env's model is read from memory instead of
one shared model staying in cache): about 5-15% of raw physics at 1,024 Franka envs here.
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


def default_num_threads() -> int:
    """Physics threads: ``WORLDLOOP_NUM_THREADS`` if set, else every core this process may use."""
    env = os.environ.get("WORLDLOOP_NUM_THREADS")
    if env:
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class MujocoBackend(Backend):
    """``num_envs`` MuJoCo C simulations of one scene, stepped by ``mujoco.rollout``."""

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
        self._stale_const = np.zeros(num_envs, dtype=bool)  # envs needing mj_setConst before a step
        self._runner = rollout.Rollout(nthread=self.num_threads)

        self._state_t = torch.from_numpy(self._state)
        self.qpos = self._state_t[:, self._qpos_cols].to(self.device, torch.float32)
        self.qvel = self._state_t[:, self._qvel_cols].to(self.device, torch.float32)

    # ------------------------------------------------------------------ stepping
    def step(self, ctrl: torch.Tensor, nsteps: int) -> torch.Tensor:
        if self._out is None or self._out.shape[1] != nsteps:
            self._ctrl = np.empty((self.num_envs, nsteps, self.mj_model.nu))
            self._out = np.empty((self.num_envs, nsteps, self.nstate))
            self._sensor = np.empty((self.num_envs, nsteps, self.mj_model.nsensordata))
        if self._stale_const.any():
            for i in self._stale_const.nonzero()[0]:
                mujoco.mj_setConst(self.models[i], self._datas[0])
            self._stale_const[:] = False
        # The control is held for all substeps (zero-order hold over the decimation).
        self._ctrl[:] = ctrl.detach().to("cpu", torch.float64).numpy()[:, None, :]
        t_before = self._state[:, 0].copy()
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
        """Give every env its own ``MjModel`` copy (once) and return them, for randomization."""
        if not self._own_models:
            self.models = [copy.copy(self.mj_model) for _ in range(self.num_envs)]
            self._own_models = True
        return self.models

    def set_model_params(self, field: str, mask: torch.Tensor, values: torch.Tensor) -> None:
        model_param(self.mj_model, field)  # an unknown field is refused before any copy is made
        idx = mask.to("cpu").numpy().nonzero()[0]
        if idx.size == 0:
            return
        models = self.per_env_models()
        vals = values.detach().to("cpu", torch.float64).numpy()
        for i in idx:
            model_param(models[i], field)[...] = vals[i]
        if field in _SETCONST_FIELDS:
            self._stale_const[idx] = True

    def get_model_params(self, field: str) -> torch.Tensor:
        if not self._own_models:
            value = torch.as_tensor(model_param(self.mj_model, field), dtype=torch.float32)
            return value.expand(self.num_envs, *value.shape).to(self.device, copy=True)
        rows = np.stack([model_param(m, field) for m in self.models])
        return torch.as_tensor(rows, dtype=torch.float32, device=self.device)

    def close(self) -> None:
        self._runner.close()

