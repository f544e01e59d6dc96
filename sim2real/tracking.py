"""Log replay: step a robot log's actions open loop in sim and measure how far sim and log drift apart.

    env = worldloop.make("Franka-Lift-v0", num_envs=logs.num_episodes)
    tr = replay_logs(env, logs)
    tr.joint_rmse()            # (J,) [rad] per measured joint
    tr.error_over_time()       # {"joint": (T,) [rad], "ee": (T,) [m], "object": (T,) [m], "effort": (T,) [N m]}

Each env starts at its episode's first logged frame: the measured coordinates are written over the
env's reset state (coordinates the log lacks, e.g. an unlogged object, keep the reset's), at rest
(``qvel = 0``: a log starts with the robot still). Then the logged actions are stepped one per frame,
whatever the sim does: open loop, as in SIMPLER's and Real-is-Sim's replay evaluations. Several
envs may replay the same episode (``assign``), e.g. under different physical parameters pinned with
``env.randomizer.set``: this is how system identification scores a whole population at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import torch

from worldloop.envs.batched_env import BatchedEnv
from worldloop.sim2real.logs import LogError, RobotLogs

JOINT_SCALE = 0.01
"""[rad or m] Joint error counted as one unit of the replay loss."""
OBJECT_SCALE = 0.01
"""[m] Object position error counted as one unit of the replay loss."""
OBJECT_ROBUST = 0.03
"""[m] Scale of the Cauchy loss on object errors: an error well beyond it (a grasp that closed on air in
replay but not in the log: contact makes open-loop replays chaotic) adds only ~log of it to the loss."""
EFFORT_SCALE = 0.5
"""[N m] Torque error counted as one unit of the replay loss."""


def servo_effort(env: BatchedEnv, actuators: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``(num_envs, len(actuators))`` [N m] the force MuJoCo's ``general`` actuators apply in the current
    state under the held command ``env.ctrl``: ``gain * ctrl + bias0 + bias1 * q + bias2 * qdot``, clipped
    to ``forcerange`` (MuJoCo documentation, "Actuation model"), with each env's own (per-env randomized)
    ``gain`` ``(num_envs, nu)`` and ``bias`` ``(num_envs, nu, 3)``."""
    m = env.mj_model
    a = actuators.cpu().numpy()
    jnt = m.actuator_trnid[a, 0]
    q = env.qpos[:, torch.as_tensor(m.jnt_qposadr[jnt], device=env.device)]
    qd = env.qvel[:, torch.as_tensor(m.jnt_dofadr[jnt], device=env.device)]
    ctrl = env.ctrl[:, actuators]
    f = gain[:, actuators] * ctrl + bias[:, actuators, 0] + bias[:, actuators, 1] * q + bias[:, actuators, 2] * qd
    lo = torch.as_tensor(m.actuator_forcerange[a, 0], dtype=f.dtype, device=f.device)
    hi = torch.as_tensor(m.actuator_forcerange[a, 1], dtype=f.dtype, device=f.device)
    limited = torch.as_tensor(m.actuator_forcelimited[a].astype(bool), device=f.device)
    return torch.where(limited, torch.maximum(torch.minimum(f, hi), lo), f)


def actuator_params(env: BatchedEnv) -> tuple[torch.Tensor, torch.Tensor]:
    """Each env's current ``(gain (num_envs, nu), bias (num_envs, nu, 3))`` of its actuators."""
    try:
        g = env.backend.get_model_params("actuator_gainprm")[..., 0]
        b = env.backend.get_model_params("actuator_biasprm")[..., :3]
    except NotImplementedError:
        m = env.mj_model
        g = torch.as_tensor(m.actuator_gainprm[:, 0], dtype=torch.float32).expand(env.num_envs, -1)
        b = torch.as_tensor(m.actuator_biasprm[:, :3], dtype=torch.float32).expand(env.num_envs, -1, -1)
    return g.to(env.device), b.to(env.device)


def actuator_ids(env: BatchedEnv, names: list[str]) -> torch.Tensor:
    """Indices of the named actuators. Raises :class:`LogError` naming an unknown one."""
    ids = []
    for n in names:
        i = mujoco.mj_name2id(env.mj_model, mujoco.mjtObj.mjOBJ_ACTUATOR, n)
        if i < 0:
            raise LogError(f"effort column {n!r} names no actuator of {env.scene_path.name}")
        ids.append(i)
    return torch.tensor(ids, dtype=torch.long)


def coord_index(env: BatchedEnv, coords: list[str]) -> torch.Tensor:
    """``qpos`` indices of named coordinates (``joint1``, ``cube_joint.x``, ...)."""
    from worldloop.data.collect import coord_names

    scene = coord_names(env.mj_model, "qpos")
    return torch.tensor([scene.index(c) for c in coords], dtype=torch.long)


@dataclass
class Tracking:
    """Replayed and logged trajectories, ``[env, time, ...]`` on the CPU."""

    coords: list[str]
    """Names of the measured coordinates."""
    sim: torch.Tensor
    """``(M, T, len(coords))`` the replayed coordinates at each logged frame."""
    measured: torch.Tensor
    """``(M, T, len(coords))`` the logged coordinates (each env's episode)."""
    valid: torch.Tensor
    """``(M, T)`` bool: the frame is inside the episode."""
    effort_names: list[str]
    sim_effort: torch.Tensor | None
    """``(M, T, n)`` [N m] replayed actuator torques (frame 0 excluded from errors: no command yet)."""
    measured_effort: torch.Tensor | None
    sim_ee: torch.Tensor | None = None
    """``(M, T, 3)`` [m] replayed end-effector (``grip`` site) positions, where the scene has one."""
    measured_ee: torch.Tensor | None = None
    """``(M, T, 3)`` [m] end-effector positions forward kinematics gives for the logged joints."""

    def _groups(self) -> tuple[list[int], list[list[int]]]:
        """Indices of scalar joint coordinates, and ``[x, y, z]`` triples of free bodies."""
        joints, objects = [], []
        for i, c in enumerate(self.coords):
            if "." not in c:
                joints.append(i)
            elif c.endswith(".x") and all(f"{c[:-2]}.{s}" in self.coords for s in "yz"):
                objects.append([i, self.coords.index(f"{c[:-2]}.y"), self.coords.index(f"{c[:-2]}.z")])
        return joints, objects

    @property
    def joint_names(self) -> list[str]:
        return [self.coords[i] for i in self._groups()[0]]

    @property
    def object_names(self) -> list[str]:
        return [self.coords[g[0]][:-2] for g in self._groups()[1]]

    def joint_error(self) -> torch.Tensor:
        """``(M, T, J)`` [rad or m] replayed minus logged joint positions."""
        j = self._groups()[0]
        return self.sim[..., j] - self.measured[..., j]

    def object_error(self) -> torch.Tensor:
        """``(M, T, O)`` [m] distance between replayed and logged object positions."""
        groups = self._groups()[1]
        if not groups:
            return torch.zeros(*self.sim.shape[:2], 0)
        d = [torch.linalg.vector_norm(self.sim[..., g] - self.measured[..., g], dim=-1) for g in groups]
        return torch.stack(d, -1)

    def effort_error(self, debias: bool = False) -> torch.Tensor | None:
        """``(M, T, n)`` [N m] replayed minus logged torques (zero at frame 0), or ``None``. With ``debias``
        each episode's mean error per actuator is removed first: a torque-sensor offset, and the
        constant servo torque a start state measured with noise leaves (``kp`` x the encoder error)."""
        if self.sim_effort is None or self.measured_effort is None:
            return None
        e = self.sim_effort - self.measured_effort
        e[:, 0] = 0.0
        if debias:
            v = self.valid.clone()
            v[:, 0] = False
            mean = torch.where(v[..., None], e, 0.0).sum(1, keepdim=True) / v.sum(1).clamp(min=1)[:, None, None]
            e = torch.where(v[..., None], e - mean, 0.0)
        return e

    def residuals(
        self, joint_scale: float = JOINT_SCALE, object_scale: float = OBJECT_SCALE, effort_scale: float = EFFORT_SCALE
    ) -> torch.Tensor:
        """``(M, T, k)`` the scaled errors the fit minimises (zero outside episodes): joint errors over
        ``joint_scale``; object distances over ``object_scale`` through a Cauchy loss of scale
        :data:`OBJECT_ROBUST` (the residual ``sqrt(c^2 log(1 + (d / c)^2)) / object_scale``); torque errors,
        debiased per episode (:meth:`effort_error`), over ``effort_scale``."""
        c = OBJECT_ROBUST
        d = self.object_error()
        parts = [self.joint_error() / joint_scale, (c * c * torch.log1p((d / c).square())).sqrt() / object_scale]
        e = self.effort_error(debias=True)
        if e is not None and math.isfinite(effort_scale):
            parts.append(e / effort_scale)
        r = torch.cat(parts, -1)
        return torch.where(self.valid[..., None], r, 0.0)

    def loss(self, **scales: float) -> torch.Tensor:
        """``(M,)`` mean over each env's valid frames of the sum of squared :meth:`residuals`."""
        r = self.residuals(**scales)
        return r.square().sum((1, 2)) / self.valid.sum(1).clamp(min=1)

    def joint_rmse(self) -> torch.Tensor:
        """``(J,)`` [rad or m] RMS joint error over every valid frame."""
        e = self.joint_error()[self.valid]
        return e.square().mean(0).sqrt()

    def error_over_time(self) -> dict[str, torch.Tensor]:
        """``{"joint": (T,) [rad] RMS over joints, "ee": (T,) [m], "object": (T,) [m], "effort": (T,) [N m]}``:
        each the mean (object: median) over the envs whose episode has that frame (missing: not logged)."""
        n = self.valid.sum(0).clamp(min=1)
        v = self.valid

        def mean(x: torch.Tensor) -> torch.Tensor:
            return torch.where(v, x, 0.0).sum(0) / n

        out = {"joint": mean(self.joint_error().square().mean(-1).sqrt())}
        if self.sim_ee is not None and self.measured_ee is not None:
            out["ee"] = mean(torch.linalg.vector_norm(self.sim_ee - self.measured_ee, dim=-1))
        if self.object_error().shape[-1]:  # median over episodes (see summary)
            o = torch.where(v, self.object_error().mean(-1), float("nan"))
            out["object"] = o.nanmedian(0).values
        e = self.effort_error()
        if e is not None:
            out["effort"] = mean(e.square().mean(-1).sqrt())
        return out

    def summary(self) -> dict[str, float]:
        """Scalar errors: ``joint_rmse`` [rad] over every valid frame; ``ee_rmse`` / ``object_rmse`` [m]
        the median over episodes of each episode's RMS error (a median: one object that contact threw
        elsewhere in one replay would otherwise hide the rest) and ``ee_final`` / ``object_final`` [m]
        the median error at the last frame; ``effort_rmse`` [N m] (those the log allows)."""
        v = self.valid
        last = (v.sum(1) - 1).clamp(min=0)
        rows = torch.arange(v.shape[0])
        n = v.sum(1).clamp(min=1)

        def per_episode_rms(d: torch.Tensor) -> float:
            return float((torch.where(v, d.square(), 0.0).sum(1) / n).sqrt().median())

        out = {"joint_rmse": float(self.joint_error()[v].square().mean().sqrt())}
        if self.sim_ee is not None and self.measured_ee is not None:
            d = torch.linalg.vector_norm(self.sim_ee - self.measured_ee, dim=-1)
            out["ee_rmse"] = per_episode_rms(d)
            out["ee_final"] = float(d[rows, last].median())
        o = self.object_error()
        if o.shape[-1]:
            out["object_rmse"] = per_episode_rms(o.mean(-1))
            out["object_final"] = float(o.mean(-1)[rows, last].median())
        e = self.effort_error()
        if e is not None:
            out["effort_rmse"] = float(e[v][1:].square().mean().sqrt())
        return out


def start_states(env: BatchedEnv, logs: RobotLogs, assign: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(qpos, qvel)`` of each env's first frame: its reset state with the logged coordinates written
    over it, at rest."""
    qpos = env.qpos.clone()
    idx = coord_index(env, logs.coords).to(env.device)
    qpos[:, idx] = logs.measured[assign, 0].to(env.device)
    return qpos, torch.zeros(env.num_envs, env.nv, device=env.device)


def replay_logs(
    env: BatchedEnv, logs: RobotLogs, assign: torch.Tensor | None = None, *, end_effector: bool = False
) -> Tracking:
    """Replay logged episodes open loop, one per env, and return both trajectories.

    Args:
        env: an env of the log's task; its randomization terms already pinned as wanted.
        logs: the log (checked against an env of this task by :func:`~worldloop.sim2real.logs.read_logs`).
        assign: ``(num_envs,)`` episode index each env replays; default env ``i`` replays episode ``i``.
        end_effector: also compute the ``grip`` site's position in sim and from the logged joints.

    Raises:
        ValueError: ``assign`` has the wrong length or an episode index out of range.
    """
    M = env.num_envs
    assign = torch.arange(M) if assign is None else torch.as_tensor(assign, dtype=torch.long).cpu()
    if assign.shape != (M,) or int(assign.min()) < 0 or int(assign.max()) >= logs.num_episodes:
        raise ValueError(f"assign must be ({M},) episode indices in 0..{logs.num_episodes - 1}")
    env.reset()
    qpos0, qvel0 = start_states(env, logs, assign)
    env.set_state(qpos0, qvel0)
    idx = coord_index(env, logs.coords).to(env.device)
    T = int(logs.lengths[assign].max())
    valid = logs.valid[assign, :T]
    actions = logs.actions[assign, :T].to(env.device)
    sim = torch.zeros(M, T, len(logs.coords))
    eff_ids = actuator_ids(env, logs.effort_names) if logs.effort is not None else None
    gain, bias = actuator_params(env) if eff_ids is not None else (None, None)
    sim_eff = torch.zeros(M, T, len(logs.effort_names)) if eff_ids is not None else None
    for t in range(T):
        sim[:, t] = env.qpos[:, idx].cpu()
        if eff_ids is not None:
            sim_eff[:, t] = servo_effort(env, eff_ids, gain, bias).cpu()
        env.step(actions[:, t])
    tr = Tracking(
        coords=list(logs.coords),
        sim=sim,
        measured=logs.measured[assign, :T].clone(),
        valid=valid,
        effort_names=list(logs.effort_names),
        sim_effort=sim_eff,
        measured_effort=None if logs.effort is None else logs.effort[assign, :T].clone(),
    )
    if end_effector:
        tr.sim_ee, tr.measured_ee = _grip_positions(env, tr, qpos0)
    return tr


def _grip_positions(
    env: BatchedEnv, tr: Tracking, qpos0: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Forward kinematics of the ``grip`` site for the replayed and logged joints, all frames at once."""
    from worldloop.envs.kinematics import ForwardKinematics

    m = env.mj_model
    site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "grip")
    if site < 0:
        return None, None
    body = int(m.site_bodyid[site])
    fk = ForwardKinematics(m, torch.device("cpu"))
    idx = coord_index(env, tr.coords)
    out = []
    for q in (tr.sim, tr.measured):
        M, T = q.shape[:2]
        full = qpos0.cpu().float()[:, None].expand(M, T, -1).clone()  # unlogged coordinates: the start state
        full[..., idx] = q
        full = full.reshape(M * T, -1)
        out.append(fk.site_pos(fk.body_poses(full, fk.ancestors([body])), site).reshape(M, T, 3))
    return out[0], out[1]
