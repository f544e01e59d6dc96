"""Franka Panda actions: four action spaces, the gripper and differential IK, batched on the env's device.

Every Franka task uses :class:`FrankaArm` and mixes :class:`FrankaActionsCfg` into its config, so the
action space is chosen by one config field, ``action_space``:

- ``"joint_pos"`` (default), 8 values: ``q_target = q_home + joint_action_scale * a[:7]`` [rad], clipped
  to the joint ranges (an absolute target around the scene's ``home`` keyframe).
- ``"joint_delta"``, 8 values: ``q_target = q_cmd + joint_delta_scale * a[:7]`` [rad], a change of the
  last joint command per policy step (zero action holds the arm where it was sent, which makes fine
  positioning easy to learn; ManiSkill's ``pd_joint_target_delta_pos``).
- ``"ee_delta"``, 7 values: a change of the grip site's pose per policy step, ``a[:3] * ee_pos_scale``
  [m] (world frame) and ``a[3:6] * ee_rot_scale`` [rad] (rotation vector, world frame), turned into
  joint targets by one damped least-squares step of differential IK.
- ``"ee_pos"``, 5 values: ``ee_delta`` restricted to what top-down manipulation needs, a grip site
  displacement ``a[:3] * ee_pos_scale`` [m] and a yaw change ``a[3] * ee_rot_scale`` [rad] about world z,
  with the hand held pointing down (any tilt is corrected in the same IK step). Exploration noise
  then moves the hand instead of tilting it, which is what makes PPO fast on the table-top tasks
  (robosuite's ``OSC_POSITION``, ManiSkill's ``pd_ee_delta_pos``).

The last value is the gripper command in every space: ``> 0`` opens (0.04 m per finger), ``<= 0`` closes;
with ``gripper="closed"`` or ``"open"`` there is no such value and the fingers stay closed or open.

Position servos need a persistent target: a target equal to the measured joint positions gives no
gravity compensation and the arm sinks. ``joint_delta`` therefore integrates its steps on the last joint
*command* ``q_cmd`` (not the measured ``q``). ``ee_delta`` and ``ee_pos`` integrate theirs on a grip *pose
target* (``ee_target``) and turn the error between that target and the pose of ``q_cmd`` into a joint step,
so a zero action holds the hand where it is (the null-space pull toward ``home`` cannot move it, the error
feedback takes any leak back) and a blocked hand is not driven elsewhere. Two leads keep pushing into an
obstacle from winding a command up: the pose target stays within ``ee_max_pos_lead`` of the measured grip,
and, in every action space, the joint command within ``ee_max_lead`` of the measured joints. On an axis
along which the hand does not move (an obstacle stops it), the pose target's lead shrinks to
``ee_stall_lead`` (1 cm by default): that bounds the force the hand presses with, as a force-limited
Cartesian impedance controller does, so the servos do not saturate and turn the hand about its contact.

Every joint command moves at most Franka's joint velocity limit (:data:`JOINT_VEL_LIMITS`) times the
policy step from the last one, the whole step scaled down together so an IK step keeps its direction:
the servos then track a ramp a real Panda could follow instead of jumping (a real arm's controller
refuses or rate-limits faster commands; libfranka's rate limiter does the same).
The gripper's finger target likewise ramps towards open or closed at the Franka Hand's 0.2 m/s
(``finger_speed_limit``).

The scripted experts use :meth:`FrankaArm.actions_toward`: move the grip site towards a pose in either
action space.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import mujoco
import torch

from worldloop.envs.kinematics import (
    ForwardKinematics,
    JointGravity,
    Poses,
    SiteJacobian,
    norm,
    quat_conjugate,
    quat_from_rotvec,
    quat_from_yaw,
    quat_mul,
    quat_to_rotvec,
    yaw_of,
)
from worldloop.envs.randomization import RandTerm

if TYPE_CHECKING:
    from worldloop.envs.batched_env import BatchedEnv

ARM_JOINTS = [f"joint{i}" for i in range(1, 8)]
FINGER_JOINTS = ["finger_joint1", "finger_joint2"]
ActionSpace = Literal["joint_pos", "joint_delta", "ee_delta", "ee_pos"]
"""The four Franka action spaces (see the module docstring)."""
ACTION_SPACES: tuple[str, ...] = typing.get_args(ActionSpace)
GRIPPER_MODES = ("policy", "closed", "open")
JOINT_VEL_LIMITS = torch.tensor([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61])
"""[rad/s] the arm joints' maximum speeds (Franka Emika, "Robot and interface specifications", joint space
limits; as in franka_description joint_limits.yaml)."""
FINGER_OPEN = 0.04
"""[m] opening of each finger when the gripper is open (8 cm between the pads)."""
FINGER_VEL_LIMIT = 0.2
"""[m/s] each finger's maximum speed (franka_description, the Franka Hand's finger joint ``limit velocity``)."""


@dataclass(kw_only=True)
class FrankaActionsCfg:
    """Action-space fields shared by every Franka task config (mixed in next to ``TaskCfg``)."""

    action_space: ActionSpace = "joint_pos"
    """``joint_pos``: 7 joint targets around ``home`` + gripper; ``joint_delta``: 7 joint target changes
    + gripper; ``ee_delta``: grip pose change + gripper; ``ee_pos``: grip displacement, yaw change
    + gripper with the hand pointing down."""
    joint_action_scale: float = 2.0
    """[rad] joint target offset from ``home`` per unit action (``joint_pos``)."""
    joint_delta_scale: float = 0.05
    """[rad] joint target change per unit action and policy step (``joint_delta``)."""
    ee_pos_scale: float = 0.02
    """[m] grip site displacement per unit action and policy step (``ee_delta``, ``ee_pos``)."""
    ee_rot_scale: float = 0.1
    """[rad] grip site rotation per unit action and policy step (``ee_delta``, ``ee_pos``)."""
    ee_max_lead: float | None = None
    """[rad] how far a joint command may lead the measured joint; ``None``: the joint's velocity limit
    times its servo's kv / kp (0.1 s), the lead at which the servo asks for exactly the limit speed, so
    that catching up after a blocked or saturated stretch is no faster than a real Panda moves."""
    ee_max_pos_lead: float = 0.1
    """[m] how far the grip pose target may lead the measured grip (``ee_delta``, ``ee_pos``): pressing into
    an obstacle pushes at most this far into it. Above the servos' tracking lag at full speed (their
    kv / kp = 0.1 s times 1 m/s), so free motion never meets it."""
    ee_stall_lead: float | None = 0.01
    """[m] how far the grip pose target may lead the measured grip along an axis on which the hand stands
    still (``ee_delta``, ``ee_pos``); ``None``: no such bound, only ``ee_max_pos_lead``. Per axis the lead is
    capped at ``ee_stall_lead + 3 * (kv / kp) * |v|`` (``v`` the grip's measured speed along the axis,
    ``kv / kp`` = 0.1 s the servos' tracking lag, 3x of it for accelerating) and at ``ee_max_pos_lead``.
    With 0.01, a hand pressed into the table with a full "down" action pushes with 180-300 N instead of
    400-500 N (joint 2 at 65-70 N m, below its 87 N m limit) and stays within 2 cm of where the table
    stopped it instead of 4-7 cm (``tests/test_physics.py``); a hand starting from rest loses what one
    policy step commands beyond this lead (at most 1.8 cm of a full 20 Hz step of Push). Tasks whose
    trained defaults predate it set ``None`` (``Franka-Lift-v0``: with it, its reward taught pressing the
    grasped cube onto the table; BENCHMARKS.md, "The stall lead")."""
    ee_max_rot_lead: float = 0.5
    """[rad] how far the grip orientation target may lead the measured hand (``ee_delta``, ``ee_pos``)."""
    start_grip_pos: tuple[float, float, float] | None = None
    """[m] grip site position (world frame, hand pointing down) the arm starts episodes at, solved by IK
    once; ``None`` starts at the scene's ``home`` keyframe. Available as ``FrankaArm.start``."""
    gripper: Literal["policy", "closed", "open"] = "policy"
    """``policy``: the last action value opens (> 0) or closes the gripper; ``closed``: no gripper value, the
    fingers stay closed (for tasks that start with the object in the hand, as Isaac Lab's Factory does);
    ``open``: no gripper value, the fingers stay open (reaching)."""
    finger_speed_limit: float | None = FINGER_VEL_LIMIT
    """[m/s] the fastest the gripper's finger target moves towards open or closed (``FINGER_VEL_LIMIT``, the Franka
    Hand's): a "close" ramps the target at this speed, so the fingers close over 0.2 s instead of jumping
    (1.3 m/s at 50 Hz without it); the target still ends at closed, past a grasped object's surface, so the
    squeeze once closed is the same (2,500 N/m times the fingers' distance from closed, at most 100 N).
    ``None``: the target jumps to open or closed."""
    gravity_compensation: bool = True
    """Add the nominal arm's gravity torque / servo stiffness to the joint targets, so that a static
    target is reached instead of sagging by up to ~1 cm (the real Panda compensates gravity itself)."""


def down_quat(yaw: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` hand orientation pointing straight down with the fingers turned ``yaw`` [rad] about
    world z from the ``home`` pose (yaw 0: fingers along the world y axis)."""
    # At home the hand frame is the world frame turned by pi about x: x along world x, fingers (y)
    # along world -y, z pointing down.
    flip = yaw.new_tensor([0.0, 1.0, 0.0, 0.0]).expand(yaw.shape[0], 4)
    return quat_mul(quat_from_yaw(yaw), flip)


def wrap_to_pi(a: torch.Tensor, period: float = 2 * math.pi) -> torch.Tensor:
    """Angles ``a`` [rad] wrapped into ``[-period/2, period/2)``."""
    return torch.remainder(a + 0.5 * period, period) - 0.5 * period


def nearest_yaw(yaw: torch.Tensor, current: torch.Tensor, period: float, limit: float = 2.0) -> torch.Tensor:
    """The yaw ``(N,)`` [rad] equivalent to ``yaw`` modulo ``period`` (the symmetry of what is grasped)
    that is nearest to the hand's ``current`` yaw, kept within ``[-limit, limit]`` (the wrist's range
    around ``home`` with the default ``joint_action_scale``). Avoids half-turns of the wrist when a
    target's yaw crosses a symmetry boundary."""
    y = current + wrap_to_pi(yaw - current, period)
    y = torch.where(y > limit, y - period, y)
    return torch.where(y < -limit, y + period, y)


class FrankaArm:
    """The Panda's action spaces, gripper and differential IK for one :class:`BatchedEnv`."""

    def __init__(
        self,
        env: BatchedEnv,
        cfg: FrankaActionsCfg,
        *,
        damping: float = 0.05,
        null_gain: float = 0.1,
        counter_rotation_weight: float = 0.1,
    ):
        if cfg.action_space not in ACTION_SPACES:
            raise ValueError(f"action_space must be one of {ACTION_SPACES}, got {cfg.action_space!r}")
        if cfg.ee_stall_lead is not None and not cfg.ee_stall_lead > 0.0:
            raise ValueError(f"ee_stall_lead must be > 0 m or None, got {cfg.ee_stall_lead!r}")
        if cfg.gripper not in GRIPPER_MODES:
            raise ValueError(f"gripper must be one of {GRIPPER_MODES}, got {cfg.gripper!r}")
        if cfg.finger_speed_limit is not None and not cfg.finger_speed_limit > 0.0:
            raise ValueError(f"finger_speed_limit must be > 0 m/s or None, got {cfg.finger_speed_limit!r}")
        self.env, self.cfg = env, cfg
        self.device, n = env.device, env.num_envs
        self.q_ids = env.joint_qpos_ids(ARM_JOINTS)
        self.v_ids = env.joint_qvel_ids(ARM_JOINTS)
        self.finger_ids = env.joint_qpos_ids(FINGER_JOINTS)
        # The same columns as slices where they are consecutive (the Panda's are): a slice of qpos is a view,
        # where indexing by a tensor gathers a copy (30-40 us at 1,024 envs, several times per step).
        self._q_cols, self._v_cols, self._f_cols = (_cols(i) for i in (self.q_ids, self.v_ids, self.finger_ids))
        self.home = env.keyframe_qpos("home")
        self.q_home = self.home[self.q_ids]
        m = env.mj_model
        arm_act = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, f"actuator{i}") for i in range(1, 8)]
        grip_act = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, "gripper")
        if min(*arm_act, grip_act) < 0 or env.nu != 8:
            raise ValueError(f"scene {env.scene_path.name} must hold exactly franka_panda.xml's 8 actuators")
        rng = env.ctrl_range
        self.q_lo, self.q_hi = rng[arm_act, 0], rng[arm_act, 1]
        self.grip_lo, self.grip_hi = rng[grip_act, 0], rng[grip_act, 1]
        self.fk = ForwardKinematics(m, self.device)
        self.jac = SiteJacobian(self.fk, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "grip"))
        self.gravity = JointGravity(self.fk, [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in ARM_JOINTS])
        self.kp = torch.as_tensor(m.actuator_gainprm[arm_act, 0], dtype=torch.float32, device=self.device)
        self.null_gain = null_gain
        self._damp2 = damping**2
        # Joints 1 and 3 turning in opposite directions barely moves the hand when joint 2 is near 0
        # (their axes align), so plain least squares commands fast counter-rotations there. The Panda
        # model's servos (kv = 450 Nm s/rad, saturating at 87 Nm) turn such a counter-rotation of
        # > ~0.4 rad/s into a sustained 3 Hz oscillation of both joints. Make that mode 10x costlier.
        # The weight is W^-1 = I - (1 - w) m m^T for that mode m; the IK applies it as a rank-one update.
        mode = torch.tensor([1.0, 0, -1.0, 0, 0, 0, 0], device=self.device) / math.sqrt(2.0)
        self._mode, self._mode_w = mode[:, None], (1.0 - counter_rotation_weight) * mode[:, None]
        self._cache = None
        self.q_cmd = self.q_home.expand(n, 7).clone()
        """``(N, 7)`` [rad] last joint targets (before gravity compensation) sent to the arm's servos."""
        self.close_cmd = torch.zeros(n, dtype=torch.bool, device=self.device)
        """``(N,)`` the last gripper command was "close"."""
        self.grip_cmd = torch.full((n,), float(self.grip_hi), device=self.device)
        """``(N,)`` [m] the finger target sent to the gripper servo, ramping towards open or closed."""
        self.grip_max_step = math.inf if cfg.finger_speed_limit is None else cfg.finger_speed_limit * env.step_dt
        """[m] the most the finger target moves in one policy step (``cfg.finger_speed_limit``)."""
        self.max_step = JOINT_VEL_LIMITS.to(self.device) * env.step_dt
        """``(7,)`` [rad] the most a joint command moves in one policy step (the velocity limits)."""
        kv = -torch.as_tensor(m.actuator_biasprm[arm_act, 2], dtype=torch.float32, device=self.device)
        self.max_lead = (
            JOINT_VEL_LIMITS.to(self.device) * kv / self.kp if cfg.ee_max_lead is None
            else torch.full((7,), float(cfg.ee_max_lead), device=self.device)
        )  # fmt: skip
        """``(7,)`` [rad] the most a joint command leads the measured joint (``cfg.ee_max_lead``)."""
        self.track_lag = float((kv / self.kp).max())
        """[s] the servos' tracking lag ``kv / kp``: a joint moving at speed ``w`` trails its target by ``lag * w``."""
        self.ee_target = (torch.zeros(n, 3, device=self.device), torch.zeros(n, 4, device=self.device))
        """Grip pose target ``((N, 3) [m], (N, 4))`` of ``ee_delta`` / ``ee_pos`` (set at reset)."""
        self._qpos = env.qpos.clone()
        self.start = self.home.clone()
        """``(nq,)`` the scene's ``home`` keyframe with the arm at ``cfg.start_grip_pos`` (if set)."""
        if cfg.start_grip_pos is not None:
            pos = torch.tensor([cfg.start_grip_pos], dtype=torch.float32, device=self.device)
            self.start[self.q_ids] = self.solve_ik(pos, down_quat(pos.new_zeros(1)))[0]
            err = torch.linalg.vector_norm(self.grip_pose_at(self.start.unsqueeze(0))[0] - pos).item()
            if err > 0.005:
                raise ValueError(f"start_grip_pos {cfg.start_grip_pos} is out of the arm's reach ({err:.3f} m off)")

    # ---- action spaces ------------------------------------------------------------------------
    @property
    def action_dim(self) -> int:
        return {"ee_delta": 7, "ee_pos": 5}.get(self.cfg.action_space, 8) - (self.cfg.gripper != "policy")

    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, close: torch.Tensor | bool | None = None) -> None:
        """Start the command buffers of the envs in ``mask`` at the arm joints of ``qpos`` ``(N, nq)``, and the
        gripper at rest: closed where ``close`` ``(N,)`` (or a bool) is true. ``None``: the fixed gripper's mode,
        or for the policy's gripper, closed where the fingers in ``qpos`` are more than 1 mm from open (a state
        restored with a grasp keeps squeezing)."""
        if close is None:
            if self.cfg.gripper == "policy":
                close = qpos[:, self.finger_ids].mean(-1) < self.grip_hi - 0.001
            else:
                close = self.cfg.gripper == "closed"
        self._set_cmd(torch.where(mask.unsqueeze(-1), qpos[:, self.q_ids], self.q_cmd))
        if self.cfg.action_space in ("ee_delta", "ee_pos"):
            full = self._qpos.copy_(self.env.qpos)
            full[:, self.q_ids] = self.q_cmd
            pos, quat = self.grip_pose_at(full)
            m = mask.unsqueeze(-1)
            self.ee_target = (torch.where(m, pos, self.ee_target[0]), torch.where(m, quat, self.ee_target[1]))
        close = torch.as_tensor(close, device=self.device).expand_as(self.close_cmd)
        self.close_cmd = torch.where(mask, close, self.close_cmd)
        # Episodes start at rest: the finger target is where the command puts it, no ramp pending.
        self.grip_cmd = torch.where(mask, torch.where(close, self.grip_lo, self.grip_hi), self.grip_cmd)

    def actions_to_ctrl(self, actions: torch.Tensor) -> torch.Tensor:
        """``(N, action_dim)`` clipped actions -> ``(N, 8)`` controls: 7 joint targets [rad], gripper [m]."""
        cfg = self.cfg
        if cfg.action_space == "joint_pos":
            q = self.q_home + cfg.joint_action_scale * actions[:, :7]
        elif cfg.action_space == "joint_delta":
            q = self.q_cmd + cfg.joint_delta_scale * actions[:, :7]
        else:
            q = self.q_cmd + self._ik_step(*self._move_target(actions))
        # Velocity limits: the whole step scaled down together, so an IK step keeps its direction.
        dq = q - self.q_cmd
        q = self.q_cmd + dq / (dq.abs() / self.max_step).amax(-1, keepdim=True).clamp(min=1.0)
        q_meas = self.env.qpos[:, self._q_cols]
        q = torch.minimum(torch.maximum(q, q_meas - self.max_lead), q_meas + self.max_lead)
        self._set_cmd(q)
        if cfg.gripper == "policy":
            self.close_cmd = actions[:, -1] <= 0.0
        else:
            self.close_cmd = torch.full_like(self.close_cmd, cfg.gripper == "closed")
        goal = torch.where(self.close_cmd, self.grip_lo, self.grip_hi)
        self.grip_cmd = self.grip_cmd + (goal - self.grip_cmd).clamp(-self.grip_max_step, self.grip_max_step)
        target = self.q_cmd
        if cfg.gravity_compensation:
            target = (target + self.gravity(self._cmd_poses()) / self.kp).clamp(self.q_lo, self.q_hi)
        return torch.cat((target, self.grip_cmd.unsqueeze(-1)), dim=-1)

    # ---- kinematics ---------------------------------------------------------------------------
    def _set_cmd(self, q: torch.Tensor) -> None:
        self.q_cmd = q.clamp(self.q_lo, self.q_hi)
        self._cache = None

    def _cmd_poses(self) -> Poses:
        """The arm's body poses at the joint command, computed once per command (gravity compensation, IK
        and the experts share them)."""
        if self._cache is None:
            self._qpos.copy_(self.env.qpos)  # the fingers' positions move the hand's centre of mass a little
            self._qpos[:, self._q_cols] = self.q_cmd
            self._cache = self.fk.body_poses(self._qpos, self.gravity.bodies)
        return self._cache

    def _cmd_grip(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Grip site position ``(N, 3)`` [m] and hand orientation ``(N, 4)`` at the joint command."""
        poses = self._cmd_poses()
        return self.fk.site_pos(poses, self.jac.site_id), poses[self.jac.body][1]

    def _move_target(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Move the grip pose target by ``actions`` (``ee_delta`` / ``ee_pos``), keep it within the leads of
        the measured grip, and return the pose error ``(N, 6)`` [m, rad] of the joint command from it and
        the grip Jacobian ``(6, 7, N)`` at the joint command (envs last, :meth:`SiteJacobian.soa`)."""
        cfg = self.cfg
        pos, quat = self.ee_target
        pos = pos + cfg.ee_pos_scale * actions[:, :3]
        if cfg.action_space == "ee_delta":
            quat = quat_mul(quat_from_rotvec(cfg.ee_rot_scale * actions[:, 3:6]), quat)
        else:  # ee_pos: turn about world z, pointing down
            quat = down_quat(yaw_of(quat) + cfg.ee_rot_scale * actions[:, 3])
        pos_m, quat_m = self.grip_pos_w(), self.grip_quat_w()
        # Per axis, so that a blocked axis does not drag the others' targets along with the hand. The
        # grip's speed from the Jacobian at the joint command (within ``max_lead`` of the measured joints).
        jac = self.jac.soa(self._cmd_poses())[1]
        if cfg.ee_stall_lead is None:
            pos = pos_m + (pos - pos_m).clamp(-cfg.ee_max_pos_lead, cfg.ee_max_pos_lead)
        else:
            speed = (jac[:3] * self.env.qvel[:, self._v_cols].T).sum(1).T.abs()
            lead = (cfg.ee_stall_lead + 3.0 * self.track_lag * speed).clamp(max=cfg.ee_max_pos_lead)
            pos = pos_m + torch.minimum(torch.maximum(pos - pos_m, -lead), lead)
        rot = quat_to_rotvec(quat_mul(quat, quat_conjugate(quat_m)))
        rot = rot * (cfg.ee_max_rot_lead / norm(rot, keepdim=True).clamp(min=1e-9)).clamp(max=1.0)
        quat = quat_mul(quat_from_rotvec(rot), quat_m)
        self.ee_target = (pos, quat)
        pos_c, quat_c = self._cmd_grip()
        return torch.cat((pos - pos_c, quat_to_rotvec(quat_mul(quat, quat_conjugate(quat_c)))), dim=-1), jac

    def _ik_step(self, delta: torch.Tensor, jac: torch.Tensor | None = None) -> torch.Tensor:
        """Damped least-squares joint step ``(N, 7)`` from the joint command for a grip pose change
        ``delta`` ``(N, 6)`` [m, rad] (``jac``: the grip Jacobian ``(6, 7, N)`` at the joint command, if
        already computed)."""
        return self._dls(self.jac.soa(self._cmd_poses())[1] if jac is None else jac, delta, self.q_cmd)

    def _dls(self, jac: torch.Tensor, delta: torch.Tensor, q_arm: torch.Tensor) -> torch.Tensor:
        """Joint step ``(N, 7)`` for a grip pose change ``delta`` ``(N, 6)`` given the Jacobian ``(6, 7, N)``
        (envs last), plus a null-space pull towards ``home`` that keeps the elbow away from joint limits.

        Weighted damped least squares, ``J+ = W^-1 J^T (J W^-1 J^T + lambda^2 I)^-1`` (Nakamura and Hanafusa,
        J. Dyn. Sys., Meas., Control 108(3), 1986), with the envs in the last dimension throughout: every
        product is a multiply-add over contiguous env vectors and the 6x6 system is solved by Cholesky,
        which beats batched products and an LU inverse of 1,024 tiny matrices on a CPU."""
        d = delta.T  # (6, N)
        jw = jac - self._mode_w * (jac * self._mode).sum(1, keepdim=True)  # J W^-1 (W^-1 is symmetric)
        a = jac[:, None, 0] * jw[None, :, 0]  # (6, 6, N) J W^-1 J^T, one joint column at a time: no
        for k in range(1, jac.shape[1]):  # (6, 6, 7, N) temporary, which cost 0.6 ms a step at 1,024 envs
            a.addcmul_(jac[:, None, k], jw[None, :, k])
        a.diagonal(dim1=0, dim2=1).add_(self._damp2)
        # J+^T = (J W^-1 J^T + l^2 I)^-1 J W^-1 (the system is symmetric), solved once for its 7 columns;
        # each J+ v below is then one multiply and sum.
        pinv_t = _cholesky_solve(_cholesky(a), jw)  # (6, 7, N)

        def pinv(v: torch.Tensor) -> torch.Tensor:  # J+ v, (6, N) -> (7, N)
            return (pinv_t * v.unsqueeze(1)).sum(0)

        # J+ delta + (I - J+ J) null, written as null + J+ (delta - J null): one 7x7 product fewer.
        null = (self.null_gain * (self.q_home - q_arm)).T
        dq = null + pinv(d - (jac * null).sum(1))
        # Damping makes J+ inexact: the step falls short of delta and the null-space pull leaks into
        # the hand's pose. One refinement step on the residual removes most of both.
        return (dq + pinv(d - (jac * dq).sum(1))).T

    def solve_ik(self, pos_w: torch.Tensor, quat_w: torch.Tensor, iters: int = 100) -> torch.Tensor:
        """Arm joints ``(M, 7)`` [rad] that put the grip site at ``pos_w`` ``(M, 3)`` [m] with the hand at
        ``quat_w`` ``(M, 4)``, by ``iters`` damped least-squares steps from ``home`` (for set-up, e.g. a
        task's start pose; not for the step path)."""
        q = self.q_home.expand(pos_w.shape[0], 7).clone()
        qpos = self.home.expand(pos_w.shape[0], -1).clone()
        for _ in range(iters):
            qpos[:, self.q_ids] = q
            poses = self.fk.body_poses(qpos, self.jac.bodies)
            pos, jac = self.jac.soa(poses)
            pos = pos.T
            rot = quat_to_rotvec(quat_mul(quat_w, quat_conjugate(poses[self.jac.body][1])))
            err = torch.cat((pos_w - pos, rot), dim=-1)
            q = (q + self._dls(jac, err, q)).clamp(self.q_lo, self.q_hi)
        return q

    def grip_pose_at(self, qpos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Grip site pose ``((N, 3) [m], (N, 4))`` for full joint positions ``qpos`` ``(N, nq)`` (e.g. to
        place an object in the hand at reset)."""
        poses = self.fk.body_poses(qpos, self.jac.bodies)
        return self.fk.site_pos(poses, self.jac.site_id), poses[self.jac.body][1]

    def grip_pose_cmd(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Grip site pose ``((N, 3) [m], (N, 4))`` commanded: the pose target of ``ee_delta`` / ``ee_pos``, the
        pose the joint command would reach in the joint spaces."""
        if self.cfg.action_space in ("ee_delta", "ee_pos"):
            return self.ee_target
        return self._cmd_grip()

    def actions_toward(
        self,
        pos_w: torch.Tensor,
        quat_w: torch.Tensor,
        close: torch.Tensor,
        *,
        max_step: float | torch.Tensor = 0.01,
        max_rot_step: float = 0.04,
    ) -> torch.Tensor:
        """Actions ``(N, action_dim)`` moving the grip site towards ``pos_w`` ``(N, 3)`` [m] and ``quat_w``
        ``(N, 4)`` by at most ``max_step`` [m] and ``max_rot_step`` [rad] per policy step, with the
        gripper closing where ``close`` ``(N,)`` is true. Works in either action space."""
        pos, quat = self.grip_pose_cmd()
        dp = pos_w - pos
        step = torch.as_tensor(max_step, dtype=dp.dtype, device=self.device).reshape(-1, 1)
        dp = dp * (step / norm(dp, keepdim=True).clamp(min=1e-9)).clamp(max=1.0)
        dr = quat_to_rotvec(quat_mul(quat_w, quat_conjugate(quat)))
        dr = dr * (max_rot_step / norm(dr, keepdim=True).clamp(min=1e-9)).clamp(max=1.0)
        grip = torch.where(close, -1.0, 1.0).unsqueeze(-1)
        cfg = self.cfg
        if cfg.action_space == "ee_delta":
            arm = torch.cat((dp / cfg.ee_pos_scale, dr / cfg.ee_rot_scale), dim=-1)
        elif cfg.action_space == "ee_pos":
            dyaw = wrap_to_pi(yaw_of(quat_w) - yaw_of(quat)).clamp(-max_rot_step, max_rot_step)
            arm = torch.cat((dp / cfg.ee_pos_scale, (dyaw / cfg.ee_rot_scale).unsqueeze(-1)), dim=-1)
        else:
            q = (self.q_cmd + self._ik_step(torch.cat((dp, dr), dim=-1))).clamp(self.q_lo, self.q_hi)
            if cfg.action_space == "joint_delta":
                arm = (q - self.q_cmd) / cfg.joint_delta_scale
            else:
                arm = (q - self.q_home) / cfg.joint_action_scale
        arm = arm.clamp(-1.0, 1.0)
        return torch.cat((arm, grip), dim=-1) if cfg.gripper == "policy" else arm

    # ---- state --------------------------------------------------------------------------------
    def proprio(self) -> torch.Tensor:
        """``(N, 15)`` arm joint positions relative to ``home`` [rad], arm joint velocities [rad/s] and the
        finger opening [m]: the robot part of every Franka task's observation."""
        return torch.cat((self.joint_pos_rel(), self.joint_vel(), self.finger_opening().unsqueeze(-1)), dim=-1)

    def joint_pos_rel(self) -> torch.Tensor:
        """``(N, 7)`` [rad] arm joint positions relative to ``home``."""
        return self.env.qpos[:, self._q_cols] - self.q_home

    def joint_vel(self) -> torch.Tensor:
        """``(N, 7)`` [rad/s] arm joint velocities."""
        return self.env.qvel[:, self._v_cols].clone()  # a copy, as indexing by ids gives

    def finger_opening(self) -> torch.Tensor:
        """``(N,)`` [m] mean opening of the two fingers from the centre line (0 closed, 0.04 open)."""
        return self.env.qpos[:, self._f_cols].mean(-1)

    def grip_pos_w(self) -> torch.Tensor:
        """``(N, 3)`` [m] world position of the tool centre point between the finger pads."""
        return self.env.site_pos_w("grip")

    def grip_quat_w(self) -> torch.Tensor:
        """``(N, 4)`` world orientation of the hand (z along the fingers, y across them)."""
        return self.env.body_quat_w("hand")

    def grip_yaw(self) -> torch.Tensor:
        """``(N,)`` [rad] the hand's yaw as in :func:`down_quat` (heading of its x axis about world z)."""
        return yaw_of(self.grip_quat_w())

    def in_grip_frame(self, pos_w: torch.Tensor) -> torch.Tensor:
        """``(N, 3)`` [m] a world point in the grip frame (x across the pads' width, y along the closing
        direction, z along the fingers)."""
        rot = self.env.body_rot_w("hand").permute(1, 2, 0)  # (3, 3, N), envs last: R^T v as a multiply and sum
        return ((pos_w - self.grip_pos_w()).T.unsqueeze(1) * rot).sum(0).T  # over N tiny matrices, no bmm


__all__ = [
    "ACTION_SPACES",
    "ARM_JOINTS",
    "ActionSpace",
    "FINGER_JOINTS",
    "FINGER_OPEN",
    "FrankaActionsCfg",
    "FrankaArm",
    "JOINT_VEL_LIMITS",
    "down_quat",
    "manipulation_preset",
    "nearest_yaw",
    "wrap_to_pi",
]


def manipulation_preset(objects: str) -> dict[str, RandTerm]:
    """The default randomization of the Franka manipulation tasks, for the bodies matching
    ``objects`` (a regular expression over body names): what varies most between a simulated and a
    real pick: the object's mass, the arm's joint damping, and sensor noise. Kept mild enough that
    every task's scripted expert still succeeds."""
    return {
        "object_mass": RandTerm(kind="body_mass", targets=objects, range=(0.7, 1.3), mode="reset"),
        "joint_damping": RandTerm(kind="dof_damping", targets="joint[1-7]", range=(0.5, 2.0), dist="log_uniform"),
        "obs_noise": RandTerm(kind="obs_noise", dist="gaussian", range=(-0.002, 0.002)),
    }


def _cols(ids: torch.Tensor) -> slice | torch.Tensor:
    """``ids`` ``(K,)`` as a ``slice`` when they are consecutive and increasing, else unchanged."""
    first = int(ids[0])
    return slice(first, first + len(ids)) if ids.tolist() == list(range(first, first + len(ids))) else ids


def _cholesky(a: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor ``(n, n, N)`` of symmetric positive definite ``a`` ``(n, n, N)``, envs last
    (column by column, the Cholesky-Crout order, each step over all envs at once)."""
    n = a.shape[0]
    low = torch.zeros_like(a)
    for j in range(n):
        diag = a[j, j] - (low[j, :j] ** 2).sum(0) if j else a[j, j]
        low[j, j] = diag.sqrt()
        if j + 1 < n:
            col = a[j + 1 :, j] - (low[j + 1 :, :j] * low[j, :j]).sum(1) if j else a[j + 1 :, j]
            low[j + 1 :, j] = col / low[j, j]
    return low


def _cholesky_solve(low: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x`` ``(n, ..., N)`` with ``L L^T x = b`` for the factor ``low`` ``(n, n, N)`` of :func:`_cholesky` and
    right-hand sides ``b`` ``(n, N)`` or ``(n, k, N)`` (``k`` systems with the same matrix at once)."""
    n = low.shape[0]
    if b.dim() == 3:
        low = low.unsqueeze(2)  # (n, n, 1, N): broadcast over the k right-hand sides
    y = torch.empty_like(b)
    for j in range(n):
        y[j] = (b[j] - (low[j, :j] * y[:j]).sum(0)) / low[j, j] if j else b[j] / low[j, j]
    x = torch.empty_like(b)
    for j in reversed(range(n)):
        x[j] = (y[j] - (low[j + 1 :, j] * x[j + 1 :]).sum(0)) / low[j, j] if j + 1 < n else y[j] / low[j, j]
    return x
