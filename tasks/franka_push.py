"""Franka-Push-v0: push a cube across the table to a goal region.

Scene: ``franka_cube.xml``, a 5 cm, 0.1 kg cube on the table (top face z = 0).
Observations (``policy`` = ``critic``, 37 + action_dim values): arm joint positions relative to
    ``home`` (7) [rad], arm joint velocities (7) [rad/s], finger opening (1) [m], cube position (3) [m],
    cube orientation (4) [wxyz], cube linear velocity (3) [m/s] (to stop it at the goal), cube minus grip
    position (3) [m], push pose minus grip position (3) [m],
    goal position (3) [m], goal minus cube position (3) [m], previous action (action_dim). World frame =
    robot base frame.
Actions: ``action_space="ee_pos"`` (5, default: grip displacement of up to 2.5 cm and yaw change of up
    to 0.25 rad per step, hand pointing down), ``"joint_pos"``, ``"joint_delta"`` (8) or ``"ee_delta"`` (7),
    see ``tasks/robots/franka.py``; the last value opens (> 0) or closes the gripper (closed fingers make a
    firmer pusher).
Reward (per policy step, weights in ``PushCfg.weights``), with ``d`` the cube-to-goal distance [m]:
    ``reach = 1 - tanh(|grip - push_pose| / 0.2)`` with ``push_pose`` 1.5 cm behind the cube's face on the
    line to the goal, 2 cm above the table; ``push = 1 - tanh(d / 0.1)``; ``push_fine = 1 - tanh(d / 0.02)``;
    ``success`` = 1 while successful; ``action_rate`` and ``joint_vel`` penalties.
Success: ``d < 3 cm`` (the goal is a point on the table at the cube's resting height).
Episodes last 5 s (100 steps at 20 Hz: the short horizon is what lets PPO credit a push to the steps
    that made it).
Reset: arm with the grip 15 cm above the table at x = 0.4 m (``start_grip_pos``) plus uniform joint
    noise; cube uniform in a 20 x 30 cm area, any yaw; goal 10-20 cm from the cube, in a direction
    within 60 degrees of straight away from the robot (``goal_heading``; ManiSkill's PushCube pushes
    straight ahead), kept inside a 35 x 60 cm area of the table.
Expert (``expert()``): closed fingers come down behind the cube on the goal line and push, re-aiming
    at the cube every step; start over from above if the cube slips off the pusher.

Version history:
    v0: first release.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from worldloop import rewards
from worldloop.envs.kinematics import quat_from_yaw
from worldloop.envs.randomization import RandTerm
from worldloop.envs.task import Task, TaskCfg, TrainDefaults
from worldloop.tasks.registry import register_task
from worldloop.tasks.robots.franka import ActionSpace, FrankaActionsCfg, FrankaArm, manipulation_preset, nearest_yaw
from worldloop.tasks.robots.scripted import PhaseMachine, Waypoint

CUBE_HALF = 0.025  # [m] half edge of the cube in franka_cube.xml
PUSH_Z = 0.02  # [m] grip site height while pushing: pads just below the cube's centre
PUSH_GAP = 0.015  # [m] grip site distance behind the cube's face in the push pose


@dataclass(kw_only=True)
class PushCfg(TaskCfg, FrankaActionsCfg):
    scene: str = "franka_cube.xml"
    decimation: int = 10  # 5 ms physics, 20 Hz policy
    episode_length_s: float = 5.0
    action_space: ActionSpace = "ee_pos"
    ee_pos_scale: float = 0.025  # 0.5 m/s at most: a faster hand strikes the cube past the goal
    ee_rot_scale: float = 0.25
    start_grip_pos: tuple[float, float, float] | None = (0.4, 0.0, 0.15)
    joint_noise: float = 0.05
    """[rad] half-width of the uniform noise added to the arm's ``home`` joints at reset."""
    cube_low: tuple[float, float] = (0.4, -0.15)
    """[m] lower corner (x, y) of the area the cube starts in."""
    cube_high: tuple[float, float] = (0.6, 0.15)
    """[m] upper corner (x, y) of the cube's start area."""
    goal_distance: tuple[float, float] = (0.1, 0.2)
    """[m] range of the goal's distance from the cube's start."""
    goal_heading: tuple[float, float] = (-math.pi / 3, math.pi / 3)
    """[rad] range of the goal's direction from the cube's start, about +x (straight away from the robot);
    ``(-math.pi, math.pi)`` puts it anywhere around the cube, which includes pulling it back over its far side."""
    goal_low: tuple[float, float] = (0.35, -0.3)
    """[m] lower corner (x, y) of the area goals are clamped to."""
    goal_high: tuple[float, float] = (0.7, 0.3)
    """[m] upper corner (x, y) of the goal area."""
    success_threshold: float = 0.03
    """[m] cube-to-goal distance that counts as pushed there."""
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "reach": 1.0,  # hand to the push pose behind the cube; weaker than push so it never pays to hover
            "push": 5.0,  # the task: cube towards the goal
            "push_fine": 5.0,  # sharp bonus inside ~2 cm, where the success threshold lies
            "success": 5.0,  # stay there
            "action_rate": -1e-3,  # smooth targets; much stronger and exploration noise dominates
            "joint_vel": -1e-4,  # no swinging through the cube
        }
    )
    randomization: dict[str, RandTerm] = field(default_factory=lambda: manipulation_preset("cube"))
    """Domain randomization (``envs/randomization/``): object mass, joint damping, observation noise."""


@register_task("Franka-Push-v0", PushCfg)
class FrankaPush(Task[PushCfg]):
    """Push a cube to within 3 cm of a goal on the table."""

    # 350 iterations with the bfloat16 update where the CPU has it: 92.9% and 92.3% (seeds 0 and 1) in 16.8 and 16.5
    # minutes for the whole command on a 2-core CPU with bfloat16 (BENCHMARKS.md, "Default training commands on a
    # 2-core CPU with bfloat16"). The previous 700 float32 iterations reached 99.0% (seed 0).
    train_defaults = TrainDefaults(
        num_envs=1024,
        max_iterations=350,
        agent={"init_noise_std": 0.5, "entropy_coef": 0.005, "gamma": 0.9, "mixed_precision": "auto"},
    )

    def __init__(self, cfg: PushCfg, env) -> None:
        for name in ("goal_distance", "goal_heading"):
            lo_hi = getattr(cfg, name)
            if len(lo_hi) != 2 or not lo_hi[0] <= lo_hi[1]:
                raise ValueError(f"PushCfg.{name} must be (low, high) with low <= high, got {lo_hi!r}")
        super().__init__(cfg, env)
        self.arm = self.action_term = FrankaArm(env, cfg)
        self.cube_q = env.joint_qpos_ids(["cube_joint"])[0] + torch.arange(7, device=self.device)
        self.cube_v = env.joint_qvel_ids(["cube_joint"])[0] + torch.arange(3, device=self.device)  # linear, world
        names = ("cube_low", "cube_high", "goal_low", "goal_high")
        self.lims = {k: torch.tensor(getattr(cfg, k), device=self.device) for k in names}
        self.goal_pos_w = torch.zeros(self.num_envs, 3, device=self.device)
        self.fsm = PhaseMachine(env)

    def reset(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, cfg, env, lims = self.num_envs, self.cfg, self.env, self.lims
        qpos = self.arm.start.expand(n, -1).clone()
        qpos[:, self.arm.q_ids] += env.rand(n, 7, low=-cfg.joint_noise, high=cfg.joint_noise)
        xy = env.rand(n, 2, low=lims["cube_low"], high=lims["cube_high"])
        yaw = env.rand(n, low=-math.pi, high=math.pi)
        z = torch.full((n, 1), CUBE_HALF, device=self.device)
        qpos[:, self.cube_q] = torch.cat((xy, z, quat_from_yaw(yaw)), dim=-1)
        heading = env.rand(n, low=cfg.goal_heading[0], high=cfg.goal_heading[1])
        dist = env.rand(n, 1, low=cfg.goal_distance[0], high=cfg.goal_distance[1])
        goal = xy + dist * torch.stack((torch.cos(heading), torch.sin(heading)), dim=-1)
        goal = torch.cat((torch.maximum(torch.minimum(goal, lims["goal_high"]), lims["goal_low"]), z), dim=-1)
        self.goal_pos_w = torch.where(mask.unsqueeze(-1), goal, self.goal_pos_w)
        qpos[:, self.arm.finger_ids] = self.arm.grip_lo  # the fingers start closed, as commanded
        self.arm.reset(mask, qpos, close=True)
        return qpos, torch.zeros(n, env.nv, device=self.device)

    def _cube(self) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.env.qpos[:, self.cube_q]
        return q[:, :3], q[:, 3:]

    def observe(self) -> dict[str, torch.Tensor]:
        pos, quat = self._cube()
        goal = self.goal_pos_w
        grip = self.arm.grip_pos_w()
        push = self._push_pose(pos) - grip
        vel = self.env.qvel[:, self.cube_v]
        obs = torch.cat((self.arm.proprio(), pos, quat, vel, pos - grip, push, goal, goal - pos, self.env.actions), -1)
        return {"policy": obs, "critic": obs}

    def _push_pose(self, cube: torch.Tensor) -> torch.Tensor:
        """``(N, 3)`` [m] where the grip site pushes from: behind the cube on the line to the goal."""
        to_goal = self.goal_pos_w[:, :2] - cube[:, :2]
        d = to_goal / to_goal.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        xy = cube[:, :2] - d * (CUBE_HALF + PUSH_GAP)
        return torch.cat((xy, torch.full_like(xy[:, :1], PUSH_Z)), dim=-1)

    def rewards(self) -> dict[str, torch.Tensor]:
        pos = self._cube()[0]
        return {
            "reach": rewards.distance_tanh(self.arm.grip_pos_w(), self._push_pose(pos), std=0.2),
            "push": rewards.distance_tanh(pos, self.goal_pos_w, std=0.1),
            "push_fine": rewards.distance_tanh(pos, self.goal_pos_w, std=0.02),
            "success": rewards.success_bonus(self.success()),
            "action_rate": rewards.action_rate_l2(self.env.actions, self.env.prev_actions),
            "joint_vel": rewards.joint_vel_l2(self.arm.joint_vel()),
        }

    def success(self) -> torch.Tensor:
        return rewards.distance(self._cube()[0], self.goal_pos_w) < self.cfg.success_threshold

    def expert(self) -> torch.Tensor:
        """Scripted actions ``(num_envs, action_dim)`` for the current state."""
        cube, grip, fsm = self._cube()[0], self.arm.grip_pos_w(), self.fsm
        to_goal = self.goal_pos_w[:, :2] - cube[:, :2]
        dist = to_goal.norm(dim=-1, keepdim=True)
        d = to_goal / dist.clamp(min=1e-6)
        rel = grip[:, :2] - cube[:, :2]
        along = (rel * d).sum(-1)
        lateral = (rel[:, 0] * d[:, 1] - rel[:, 1] * d[:, 0]).abs()
        # Pushing: near enough -> lift off; slipped off the pusher -> start over. Resting: drifted -> again.
        fsm.goto((fsm.phase == 2) & (dist[:, 0] < 0.012), 3)
        fsm.goto((fsm.phase == 2) & ((lateral > 0.03) | (along > -0.02)), 0)
        fsm.goto((fsm.phase == 3) & (dist[:, 0] > 0.025), 0)
        # Fingers across the push direction: the pads' long side (3 cm) faces the cube.
        yaw = nearest_yaw(torch.atan2(d[:, 1], d[:, 0]), self.arm.grip_yaw(), math.pi)

        def at(xy: torch.Tensor, z: float) -> torch.Tensor:
            return torch.cat((xy, torch.full_like(xy[:, :1], z)), dim=-1)

        behind = cube[:, :2] - d * (CUBE_HALF + 0.04)
        # Aim up to 2 cm past the contact (fewer near the goal, so the cube stops there).
        into = cube[:, :2] - d * (CUBE_HALF + 0.01 - dist.clamp(max=0.02))
        return fsm.act(
            self.arm,
            [
                Waypoint(pos=at(behind, 0.1), yaw=yaw, close=True, tol=0.01, speed=0.75),
                Waypoint(pos=at(behind, PUSH_Z), yaw=yaw, close=True, tol=0.008, speed=0.4),
                Waypoint(pos=at(into, PUSH_Z), yaw=yaw, close=True, tol=0.0, speed=0.25),
                Waypoint(pos=at(grip[:, :2], 0.12), yaw=yaw, close=True, tol=0.0, speed=0.25),  # straight up
            ],
        )
