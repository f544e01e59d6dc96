"""My-Reach-v0: bring the Panda's fingertips to a point hovering above a randomly placed cube.

Observations (``policy`` = ``critic``, 28 values): arm joints relative to ``home`` (7) [rad], arm joint
    velocities (7) [rad/s], finger opening (1) [m], target position (3) [m], target minus grip (3) [m],
    previous action (7).
Actions (7, ``action_space="ee_delta"``): grip displacement and rotation per step + gripper.
Reward: ``reach = 1 - tanh(d / 0.1)``, ``reach_fine = 1 - tanh(d / 0.01)``, ``action_rate`` penalty,
    where ``d`` is the grip-to-target distance [m].
Success: ``d < 2 cm``. Episodes last 3 s (150 steps at 50 Hz).
Reset: arm at ``home`` plus joint noise; cube uniform on the table, any yaw; target 10 cm above it.

Version history:
    v0: first release.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

from worldloop import Task, TaskCfg, TrainDefaults, register_task, rewards
from worldloop.envs.kinematics import quat_from_yaw
from worldloop.tasks.robots.franka import FrankaActionsCfg, FrankaArm
from worldloop.tasks.robots.scripted import PhaseMachine, Waypoint


@dataclass(kw_only=True)
class MyReachCfg(TaskCfg, FrankaActionsCfg):
    scene: str = "franka_cube.xml"  # a file in worldloop/assets, or a path to your own MJCF
    decimation: int = 4  # 5 ms physics, 50 Hz policy
    episode_length_s: float = 3.0
    action_space: Literal["joint_pos", "ee_delta"] = "ee_delta"
    """``ee_delta``: move the grip by up to ``ee_pos_scale`` per step (zero action holds still)."""
    joint_noise: float = 0.1
    """[rad] half-width of the uniform noise added to the arm's ``home`` joints at reset."""
    cube_low: tuple[float, float] = (0.4, -0.2)
    """[m] lower corner (x, y) of the area the cube starts in."""
    cube_high: tuple[float, float] = (0.6, 0.2)
    """[m] upper corner (x, y) of the cube's start area."""
    hover: float = 0.1
    """[m] height of the target above the cube's centre."""
    success_threshold: float = 0.02
    """[m] grip-to-target distance that counts as reached."""
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "reach": 1.0,  # dense pull towards the target from anywhere
            "reach_fine": 1.0,  # sharp bonus inside ~1 cm, where the success threshold lies
            "action_rate": -1e-2,  # smooth motion; zero action already holds the arm still
        }
    )


@register_task("My-Reach-v0", MyReachCfg)
class MyReach(Task[MyReachCfg]):
    """Hover the fingertips 10 cm above a cube, within 2 cm."""

    # Used by `train` for options not given on the command line.
    train_defaults = TrainDefaults(num_envs=256, max_iterations=150, agent={"init_noise_std": 0.5})

    def __init__(self, cfg: MyReachCfg, env) -> None:
        super().__init__(cfg, env)
        self.arm = FrankaArm(env, cfg)  # the Panda's action spaces, IK and state, batched
        first = env.joint_qpos_ids(["cube_joint"])[0]  # a free joint: x y z qw qx qy qz
        self.cube_q = first + torch.arange(7, device=self.device)
        self.cube_lo = torch.tensor(cfg.cube_low, device=self.device)
        self.cube_hi = torch.tensor(cfg.cube_high, device=self.device)
        self.target_pos_w = torch.zeros(self.num_envs, 3, device=self.device)
        self.fsm = PhaseMachine(env)  # for the scripted expert

    @property
    def action_dim(self) -> int:
        return self.arm.action_dim

    def actions_to_ctrl(self, actions: torch.Tensor) -> torch.Tensor:
        return self.arm.actions_to_ctrl(actions)

    def reset(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Sample every env; the env writes only the rows in `mask`, and task buffers keep the
        # other rows through torch.where.
        n, env, cfg = self.num_envs, self.env, self.cfg
        qpos = self.arm.home.expand(n, -1).clone()
        qpos[:, self.arm.q_ids] += env.rand(n, 7, low=-cfg.joint_noise, high=cfg.joint_noise)
        xy = env.rand(n, 2, low=self.cube_lo, high=self.cube_hi)
        z = torch.full((n, 1), 0.025, device=self.device)  # resting on the table
        yaw = env.rand(n, low=-math.pi, high=math.pi)
        qpos[:, self.cube_q] = torch.cat((xy, z, quat_from_yaw(yaw)), dim=-1)
        target = torch.cat((xy, z + cfg.hover), dim=-1)
        self.target_pos_w = torch.where(mask.unsqueeze(-1), target, self.target_pos_w)
        self.arm.reset(mask, qpos)
        return qpos, torch.zeros(n, env.nv, device=self.device)

    def observe(self) -> dict[str, torch.Tensor]:
        to_target = self.target_pos_w - self.arm.grip_pos_w()
        obs = torch.cat((self.arm.proprio(), self.target_pos_w, to_target, self.env.actions), dim=-1)
        return {"policy": obs, "critic": obs}

    def rewards(self) -> dict[str, torch.Tensor]:
        grip = self.arm.grip_pos_w()
        return {
            "reach": rewards.distance_tanh(grip, self.target_pos_w, std=0.1),
            "reach_fine": rewards.distance_tanh(grip, self.target_pos_w, std=0.01),
            "action_rate": rewards.action_rate_l2(self.env.actions, self.env.prev_actions),
        }

    def success(self) -> torch.Tensor:
        d = rewards.distance(self.arm.grip_pos_w(), self.target_pos_w)
        return d < self.cfg.success_threshold

    def expert(self) -> torch.Tensor:
        """Scripted actions: straight to the target, hand pointing down."""
        yaw = torch.zeros(self.num_envs, device=self.device)
        return self.fsm.act(self.arm, [Waypoint(pos=self.target_pos_w, yaw=yaw, close=False, tol=0.0)])


if __name__ == "__main__":
    # `python my_reach_task.py train --task My-Reach-v0`: this file registers the task, then runs the
    # worldloop command line (train, play, bench, list) with the same arguments.
    from worldloop.scripts.cli import main

    main()
