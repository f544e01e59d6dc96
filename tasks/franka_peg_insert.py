"""Franka-Peg-Insert-v0: insert a held round peg into a square hole with 3 mm of clearance.

Scene: ``franka_peg.xml``, a 3 cm thick board with a 28 mm square hole through to the table and a
    25 mm diameter, 75 mm long capsule peg (1.5 mm of clearance a side).
The peg starts in the hand, as in Isaac Lab's Factory tasks: at reset the fingers are closed on it
    and it sticks out 4.5 cm below the grip site, so the task is the insertion, not the pick.
Observations (``policy`` = ``critic``, 28 + action_dim values): arm joint positions relative to
    ``home`` (7) [rad], arm joint velocities (7) [rad/s], finger opening (1) [m], peg tip position (3)
    [m], peg axis (3) (unit vector), hole mouth position (3) [m], hole minus peg tip (3) [m], insertion
    depth (1) [m], previous action (action_dim). World frame = robot base frame.
Actions: ``action_space="ee_pos"`` (4, default: grip displacement of up to 1 cm and yaw change of up to
    0.1 rad per step, hand pointing down), ``"joint_pos"`` (7), ``"joint_delta"`` (7) or ``"ee_delta"`` (6),
    see ``tasks/robots/franka.py``; the gripper stays closed on the peg (``gripper="closed"``; with
    ``"policy"`` one more value opens or closes it, and exploration noise opens it in the first steps).
Reward (per policy step, weights in ``PegCfg.weights``), with ``tip`` the peg's lower end and ``e`` its
    horizontal distance to the hole's axis [m]: ``approach = 1 - tanh(|tip - hole| / 0.1)``;
    ``align = exp(-e^2 / (2 * 0.005^2))``; ``insert = [e < 14 mm] * depth / 3 cm``; ``upright`` = peg
    axis vs vertical (``rewards.axis_alignment``); ``held`` = peg grasped; ``action_rate`` and
    ``joint_vel`` penalties.
Success: ``e`` inside the hole (< 14 mm) and the tip at least 80% of the hole's 3 cm depth below the
    mouth. Episodes last 4 s (200 steps at 50 Hz).
Reset: the arm in a start pose that holds the peg's tip 5 cm above the nominal hole (solved by IK
    once), plus uniform joint noise; the peg in the hand (grasp height +-3 mm); the board shifted
    uniformly by up to +-5 cm (x) and +-10 cm (y).
Expert (``expert()``): bring the peg's tip 4 cm above the hole, centre it within 1.5 mm just above
    the mouth, push down steering the tip (not the hand) onto the hole's axis, and stop pushing 4 mm
    above the floor (pressing a peg that stands on the floor tilts it out).

Version history:
    v0: first release. The gripper stays closed by default (with the policy opening it at random,
        PPO dropped the peg within the first steps of every episode); ``ee_pos`` actions by default
        (PPO: 100% after 300 iterations, against 0% with ``joint_pos`` after 150).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from worldloop import rewards
from worldloop.envs.kinematics import quat_rotate
from worldloop.envs.randomization import RandTerm
from worldloop.envs.task import Task, TaskCfg, TrainDefaults
from worldloop.tasks.registry import register_task
from worldloop.tasks.robots.franka import ActionSpace, FrankaActionsCfg, FrankaArm, down_quat, manipulation_preset
from worldloop.tasks.robots.scripted import PhaseMachine, Waypoint

PEG_RADIUS = 0.0125  # [m] in franka_peg.xml
PEG_HALF = 0.0375  # [m] centre to tip
HOLE_HALF = 0.014  # [m] half side of the square hole
HOLE_DEPTH = 0.03  # [m] board thickness


@dataclass(kw_only=True)
class PegCfg(TaskCfg, FrankaActionsCfg):
    scene: str = "franka_peg.xml"
    decimation: int = 4  # 5 ms physics, 50 Hz policy
    episode_length_s: float = 4.0
    gripper: Literal["policy", "closed"] = "closed"
    action_space: ActionSpace = "ee_pos"
    ee_pos_scale: float = 0.01  # [m] per step: at most 0.5 m/s, slow enough to centre within 1.5 mm
    joint_noise: float = 0.02
    """[rad] half-width of the uniform noise added to the arm's start joints at reset."""
    board_shift: tuple[float, float] = (0.05, 0.1)
    """[m] half-widths (x, y) of the uniform board placement noise."""
    grasp_offset: float = 0.0075
    """[m] peg centre below the grip site at reset (tip 45 mm below the grip)."""
    grasp_noise: float = 0.003
    """[m] half-width of the uniform noise on ``grasp_offset``."""
    success_depth: float = 0.8
    """Fraction of the hole's depth the tip must pass below the mouth."""
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "approach": 1.0,  # bring the peg over the board from anywhere
            "align": 2.0,  # millimetre centring decides whether the peg goes in
            "insert": 10.0,  # the task itself; counts only inside the hole
            "upright": 0.5,  # a tilted peg jams
            "held": 0.5,  # dropping the peg ends all progress
            "action_rate": -1e-3,  # smooth targets; much stronger and exploration noise dominates
            "joint_vel": -1e-4,  # no ramming
        }
    )
    randomization: dict[str, RandTerm] = field(default_factory=lambda: manipulation_preset("peg"))
    """Domain randomization (``envs/randomization/``): object mass, joint damping, observation noise."""


@register_task("Franka-Peg-Insert-v0", PegCfg)
class FrankaPegInsert(Task[PegCfg]):
    """Insert a held peg into a hole with 3 mm of clearance, at least 80% deep."""

    # PPO learns from the reward times the 0.02 s step (per-second weights, as in Isaac Lab).
    train_defaults = TrainDefaults(
        num_envs=1024,
        max_iterations=300,
        agent={"init_noise_std": 0.5, "gamma": 0.98, "reward_scale": 0.02},
    )

    def __init__(self, cfg: PegCfg, env) -> None:
        super().__init__(cfg, env)
        self.arm = self.action_term = FrankaArm(env, cfg)
        self.board_q = env.joint_qpos_ids(["board_x", "board_y"])
        self.peg_q = env.joint_qpos_ids(["peg_joint"])[0] + torch.arange(7, device=self.device)
        self.shift = torch.tensor(cfg.board_shift, device=self.device)
        # Start pose: the peg's tip 5 cm above the nominal hole, hand pointing down (IK, once).
        above = env.site_pos_w("hole")[:1].clone()
        above[:, 2] += 0.05 + cfg.grasp_offset + PEG_HALF
        self.q_start = self.arm.solve_ik(above, down_quat(torch.zeros(1, device=self.device)))[0]
        self.fsm = PhaseMachine(env)

    def reset(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, cfg, env, arm = self.num_envs, self.cfg, self.env, self.arm
        qpos = arm.home.expand(n, -1).clone()
        qpos[:, arm.q_ids] = self.q_start + env.rand(n, 7, low=-cfg.joint_noise, high=cfg.joint_noise)
        qpos[:, arm.finger_ids] = PEG_RADIUS  # fingers closed on the peg
        qpos[:, self.board_q] = env.rand(n, 2, low=-self.shift, high=self.shift)
        grip, quat = arm.grip_pose_at(qpos)
        offset = env.rand(n, 1, low=cfg.grasp_offset - cfg.grasp_noise, high=cfg.grasp_offset + cfg.grasp_noise)
        # The capsule's axis is the hand's z axis (pointing down at home).
        centre = grip + quat_rotate(quat, offset * torch.tensor([0.0, 0.0, 1.0], device=self.device))
        qpos[:, self.peg_q] = torch.cat((centre, quat), dim=-1)
        arm.reset(mask, qpos, close=True)
        return qpos, torch.zeros(n, env.nv, device=self.device)

    def _peg(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower tip ``(N, 3)`` [m] and unit axis ``(N, 3)`` pointing from the centre to that tip."""
        q = self.env.qpos[:, self.peg_q]
        axis = quat_rotate(q[:, 3:], torch.tensor([0.0, 0.0, 1.0], device=self.device).expand(q.shape[0], 3))
        axis = axis * torch.where(axis[:, 2:] > 0, -1.0, 1.0)  # the end that points down
        return q[:, :3] + PEG_HALF * axis, axis

    def _errors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Tip's horizontal distance to the hole's axis ``(N,)`` [m] and depth below the mouth ``(N,)`` [m]."""
        tip, hole = self._peg()[0], self.env.site_pos_w("hole")
        return rewards.distance(tip[:, :2], hole[:, :2]), hole[:, 2] - tip[:, 2]

    def observe(self) -> dict[str, torch.Tensor]:
        (tip, axis), hole = self._peg(), self.env.site_pos_w("hole")
        depth = self._errors()[1].unsqueeze(-1)
        obs = torch.cat((self.arm.proprio(), tip, axis, hole, hole - tip, depth, self.env.actions), dim=-1)
        return {"policy": obs, "critic": obs}

    def rewards(self) -> dict[str, torch.Tensor]:
        (tip, axis), hole, arm = self._peg(), self.env.site_pos_w("hole"), self.arm
        e, depth = self._errors()
        inside = (e < HOLE_HALF).float()
        centre = tip - PEG_HALF * axis
        held = rewards.grasped(arm.in_grip_frame(centre), arm.finger_opening(), arm.close_cmd, PEG_RADIUS)
        return {
            "approach": rewards.distance_tanh(tip, hole, std=0.1),
            "align": torch.exp(-e.square() / (2 * 0.005**2)),
            "insert": inside * rewards.ramp(depth, 0.0, HOLE_DEPTH),
            "upright": rewards.axis_alignment(-axis, torch.tensor([0.0, 0.0, 1.0], device=self.device).expand_as(axis)),
            "held": held,
            "action_rate": rewards.action_rate_l2(self.env.actions, self.env.prev_actions),
            "joint_vel": rewards.joint_vel_l2(arm.joint_vel()),
        }

    def success(self) -> torch.Tensor:
        e, depth = self._errors()
        return (e < HOLE_HALF) & (depth >= self.cfg.success_depth * HOLE_DEPTH)

    def expert(self) -> torch.Tensor:
        """Scripted actions ``(num_envs, action_dim)`` for the current state."""
        tip, hole, grip = self._peg()[0], self.env.site_pos_w("hole"), self.arm.grip_pos_w()
        up = torch.tensor([0.0, 0.0, 1.0], device=self.device)
        yaw = torch.zeros(self.num_envs, device=self.device)  # a round peg: any yaw fits
        # Deep enough: stop pushing (pressing on a peg that sits on the floor makes it tilt out).
        self.fsm.goto((self.fsm.phase == 2) & (self._errors()[1] > HOLE_DEPTH - 0.004), 3)

        def steer_tip(target: torch.Tensor) -> torch.Tensor:  # grip target that moves the tip there
            return grip + target - tip

        return self.fsm.act(
            self.arm,
            [
                Waypoint(pos=steer_tip(hole + 0.04 * up), yaw=yaw, close=True, tol=0.01, speed=0.4),
                Waypoint(pos=steer_tip(hole + 0.005 * up), yaw=yaw, close=True, tol=0.0015, speed=0.2),
                Waypoint(pos=steer_tip(hole - (HOLE_DEPTH - 0.002) * up), yaw=yaw, close=True, tol=0.0, speed=0.15),
                Waypoint(pos=None, yaw=yaw, close=True, tol=0.0),  # hold still
            ],
        )
