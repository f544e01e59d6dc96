"""Franka-Reach-v0: move the Panda's tool centre point to a sampled target position.

Observations (``policy`` = ``critic``, 34 values):
    joint positions relative to ``home`` (7) [rad], joint velocities (7) [rad/s], joint targets
    minus joint positions (7) [rad], target position in the robot base frame (3) [m], target minus
    grip position (3) [m], previous action (7).
Actions (7): ``action_space="joint_delta"`` (default): joint targets move by ``joint_delta_scale * action``
    (0.05 rad) per step from the last command (zero action holds still, which makes the last
    centimetres easy to learn); any of the four Franka action spaces works (``tasks/robots/franka.py``).
    The gripper stays open (``gripper="open"``).
Reward (per policy step, weights in ``ReachCfg.weights``):
    ``reach = 1 - tanh(d / 0.1)`` pulls from afar; ``reach_fine = 1 - tanh(d / 0.01)`` rewards the
    last centimetres; ``action_rate = |a_t - a_{t-1}|^2`` and ``joint_vel = |qd|^2`` keep motion smooth,
    where ``d`` is the grip-to-target distance [m].
Success: ``d < success_threshold`` (2 cm). Episodes last ``episode_length_s`` (3 s, 150 steps at 50 Hz).
Reset: arm at ``home`` plus uniform joint noise; the target uniform in a box above the table.
Expert (``expert()``): straight to the target, keeping the hand's orientation.

Version history:
    v0: first release. Its actions now go through the shared Franka action code: ``action_type="relative"``
        is ``action_space="joint_delta"`` (the command may lead the measured joints by at most
        ``ee_max_lead``), ``"absolute"`` is ``"joint_pos"``. Since 2026-11-30 its targets get gravity
        compensation like the other tasks' (a zero action held the grip 2.7 mm low before), and the arm
        has the shared velocity limits and reflected rotor inertia (``tasks/robots/franka.py``,
        ``assets/franka_panda.xml``): results from before are not comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from worldloop import rewards
from worldloop.envs.randomization import RandTerm
from worldloop.envs.task import Task, TaskCfg, TrainDefaults
from worldloop.tasks.registry import register_task
from worldloop.tasks.robots.franka import ActionSpace, FrankaActionsCfg, FrankaArm


@dataclass(kw_only=True)
class ReachCfg(TaskCfg, FrankaActionsCfg):
    scene: str = "franka_table.xml"
    decimation: int = 4  # 5 ms physics, 50 Hz policy
    episode_length_s: float = 3.0
    action_space: ActionSpace = "joint_delta"
    gripper: Literal["policy", "closed", "open"] = "open"
    joint_noise: float = 0.1
    """[rad] half-width of the uniform noise added to ``home`` at reset."""
    target_low: tuple[float, float, float] = (0.35, -0.25, 0.15)
    """[m] lower corner of the target box, world frame (the robot base is at the origin)."""
    target_high: tuple[float, float, float] = (0.65, 0.25, 0.50)
    """[m] upper corner of the target box."""
    success_threshold: float = 0.02
    """[m] grip-to-target distance that counts as reached."""
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "reach": 1.0,  # dense pull towards the target from anywhere in the workspace
            "reach_fine": 1.0,  # sharp bonus inside ~1 cm, where the success threshold lies
            "action_rate": -1e-3,  # smooth targets; much stronger and exploration noise dominates
            "joint_vel": -1e-4,  # settle at the target instead of oscillating through it
        }
    )
    randomization: dict[str, RandTerm] = field(
        default_factory=lambda: {
            # The arm's servo loop is what differs most between sim and a real Panda.
            "actuator_kp": RandTerm(kind="actuator_stiffness", targets="actuator[1-7]", range=(0.8, 1.2)),
            "joint_damping": RandTerm(kind="dof_damping", targets="joint[1-7]", range=(0.5, 2.0), dist="log_uniform"),
            "joint_armature": RandTerm(kind="dof_armature", targets="joint[1-7]", range=(0.8, 1.2)),
            "link_mass": RandTerm(kind="body_mass", targets="link[1-7]|hand", range=(0.9, 1.1), mode="startup"),
            "obs_noise": RandTerm(kind="obs_noise", dist="gaussian", range=(-0.005, 0.005)),  # encoder noise
            "action_latency": RandTerm(kind="action_latency", range=(0, 1)),  # 0-20 ms at 50 Hz
        }
    )
    """Domain randomization terms by name (``envs/randomization/``); ``--rand NAME.FIELD=VALUE``."""


@register_task("Franka-Reach-v0", ReachCfg)
class FrankaReach(Task[ReachCfg]):
    """Move the tool centre point to a sampled position within 2 cm."""

    # 2.7 min on 2 CPU cores with a bfloat16 update, 3.1 min in float32 (BENCHMARKS.md, "Training speed");
    # training success is 100% from iteration ~90. Small initial exploration noise: relative targets
    # integrate it.
    train_defaults = TrainDefaults(
        num_envs=1024,
        max_iterations=120,
        agent={"init_noise_std": 0.4, "entropy_coef": 0.0, "mixed_precision": "auto"},
    )

    def __init__(self, cfg: ReachCfg, env) -> None:
        super().__init__(cfg, env)
        self.arm = self.action_term = FrankaArm(env, cfg)
        self.target_lo = torch.tensor(cfg.target_low, device=self.device)
        self.target_hi = torch.tensor(cfg.target_high, device=self.device)
        self.target_pos_w = torch.zeros(self.num_envs, 3, device=self.device)

    def reset(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, arm = self.num_envs, self.arm
        qpos = arm.home.expand(n, -1).clone()
        noise = self.env.rand(n, 7, low=-self.cfg.joint_noise, high=self.cfg.joint_noise)
        qpos[:, arm.q_ids] = (arm.q_home + noise).clamp(arm.q_lo, arm.q_hi)
        target = self.env.rand(n, 3, low=self.target_lo, high=self.target_hi)
        self.target_pos_w = torch.where(mask.unsqueeze(-1), target, self.target_pos_w)
        arm.reset(mask, qpos)
        return qpos, torch.zeros(n, self.env.nv, device=self.device)

    def _distance(self) -> torch.Tensor:
        return rewards.distance(self.env.site_pos_w("grip"), self.target_pos_w)

    def observe(self) -> dict[str, torch.Tensor]:
        arm = self.arm
        obs = torch.cat(
            (
                arm.joint_pos_rel(),
                arm.joint_vel(),
                arm.q_cmd - self.env.qpos[:, arm.q_ids],
                self.target_pos_w,
                self.target_pos_w - arm.grip_pos_w(),
                self.env.actions,
            ),
            dim=-1,
        )
        return {"policy": obs, "critic": obs}

    def rewards(self) -> dict[str, torch.Tensor]:
        grip = self.env.site_pos_w("grip")
        return {
            "reach": rewards.distance_tanh(grip, self.target_pos_w, std=0.1),
            "reach_fine": rewards.distance_tanh(grip, self.target_pos_w, std=0.01),
            "action_rate": rewards.action_rate_l2(self.env.actions, self.env.prev_actions),
            "joint_vel": rewards.joint_vel_l2(self.arm.joint_vel()),
        }

    def success(self) -> torch.Tensor:
        return self._distance() < self.cfg.success_threshold

    def expert(self) -> torch.Tensor:
        """Straight to the target at up to 0.5 m/s, keeping the hand's orientation."""
        quat = self.arm.grip_pose_cmd()[1]
        return self.arm.actions_toward(self.target_pos_w, quat, self.arm.close_cmd, max_step=0.01)
