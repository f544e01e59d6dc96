"""Cartpole-v0: balance a pole on a cart. A fast sanity task (2 DoF, trains in seconds).

Observations (``policy`` = ``critic``, 4 values): cart position [m], pole angle [rad] (0 upright),
    cart velocity [m/s], pole angular velocity [rad/s].
Actions (1): cart force, ``[-1, 1]`` spans the actuator's range (20 N).
Reward (per policy step): ``alive = 1``; ``upright = (1 + cos(theta)) / 2``; ``centered = x^2``
    and ``velocity = xd^2 + 0.1 thetad^2`` as small penalties.
Terminated: ``|theta| > 0.4 rad`` or ``|x| > 2.4 m``.
Success: not terminated and ``|theta| < 0.2 rad``.
Episodes last 10 s (500 steps at 50 Hz). Reset: small uniform noise on all states.

Version history:
    v0: first release.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from worldloop import rewards
from worldloop.envs.randomization import RandTerm
from worldloop.envs.task import Task, TaskCfg, TrainDefaults
from worldloop.tasks.registry import register_task


@dataclass(kw_only=True)
class CartpoleCfg(TaskCfg):
    scene: str = "cartpole.xml"
    decimation: int = 2  # 10 ms physics, 50 Hz policy
    episode_length_s: float = 10.0
    reset_noise: float = 0.05
    """Half-width of the uniform reset noise on every position [m, rad] and velocity [m/s, rad/s]."""
    max_angle: float = 0.4
    """[rad] pole angle beyond which the episode terminates."""
    max_cart_pos: float = 2.4
    """[m] cart position beyond which the episode terminates."""
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "alive": 1.0,  # survival is the task
            "upright": 1.0,  # prefer the pole straight up, not just inside the limit
            "centered": -0.05,  # drift slowly back to the rail's middle
            "velocity": -0.01,  # damp oscillations
        }
    )
    randomization: dict[str, RandTerm] = field(
        default_factory=lambda: {
            "pole_mass": RandTerm(kind="body_mass", targets="pole", range=(0.8, 1.25), dist="log_uniform"),
            "cart_mass": RandTerm(kind="body_mass", targets="cart", range=(0.8, 1.25), dist="log_uniform"),
            "motor_gain": RandTerm(kind="actuator_stiffness", targets="cart_force", range=(0.8, 1.2)),
            "obs_noise": RandTerm(kind="obs_noise", dist="gaussian", range=(-0.01, 0.01)),
        }
    )
    """Domain randomization terms by name (``envs/randomization/``); ``--rand NAME.FIELD=VALUE``."""


@register_task("Cartpole-v0", CartpoleCfg)
class Cartpole(Task[CartpoleCfg]):
    """Balance a pole upright on a cart (sanity task)."""

    train_defaults = TrainDefaults(
        num_envs=256, max_iterations=150, agent={"actor_hidden_dims": (64, 64), "critic_hidden_dims": (64, 64)}
    )

    def __init__(self, cfg: CartpoleCfg, env) -> None:
        super().__init__(cfg, env)
        self.x_col, self.th_col = env.joint_qpos_ids(["slider", "hinge"]).tolist()
        self.xd_col, self.thd_col = env.joint_qvel_ids(["slider", "hinge"]).tolist()

    def reset(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e, r = self.env, self.cfg.reset_noise
        return e.rand(self.num_envs, e.nq, low=-r, high=r), e.rand(self.num_envs, e.nv, low=-r, high=r)

    def observe(self) -> dict[str, torch.Tensor]:
        q, v = self.env.qpos, self.env.qvel
        obs = torch.stack((q[:, self.x_col], q[:, self.th_col], v[:, self.xd_col], v[:, self.thd_col]), -1)
        return {"policy": obs, "critic": obs}

    def rewards(self) -> dict[str, torch.Tensor]:
        q, v = self.env.qpos, self.env.qvel
        return {
            "alive": torch.ones(self.num_envs, device=self.device),
            "upright": rewards.upright(torch.cos(q[:, self.th_col])),
            "centered": q[:, self.x_col].square(),
            "velocity": v[:, self.xd_col].square() + 0.1 * v[:, self.thd_col].square(),
        }

    def terminated(self) -> torch.Tensor:
        q = self.env.qpos
        return (q[:, self.th_col].abs() > self.cfg.max_angle) | (q[:, self.x_col].abs() > self.cfg.max_cart_pos)

    def success(self) -> torch.Tensor:
        return ~self.terminated() & (self.env.qpos[:, self.th_col].abs() < 0.2)
