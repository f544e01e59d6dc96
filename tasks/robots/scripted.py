"""Scripted experts: batched waypoint state machines for the Franka tasks (no learning).

An expert is a list of :class:`Waypoint` phases per env. Each policy step the current phase's target
(a grip site position, a hand yaw with the hand pointing down, a gripper command) is turned into
actions of the task's action space by :meth:`FrankaArm.actions_toward`; an env moves to its next
phase once the grip site is within ``tol`` of the target and it has spent ``wait`` seconds in the phase.
Speeds and waits are in physical units, so an expert works at any control rate (``decimation``).
Targets are recomputed from the current state every step (closed loop), and a task may send envs
back to an earlier phase (e.g. re-grasp after a slip) with :meth:`PhaseMachine.goto`.

    phases = [Waypoint(pos=above_cube, yaw=yaw, close=False, tol=0.01), ...]
    actions = self.fsm.act(self.arm, phases)          # (num_envs, action_dim)

Every task exposes its expert as ``Task.expert() -> (num_envs, action_dim)``; ``worldloop expert``
measures its success rate over seeded episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from worldloop.envs.kinematics import norm
from worldloop.rewards import orientation_error
from worldloop.tasks.robots.franka import down_quat

if TYPE_CHECKING:
    from worldloop.envs.batched_env import BatchedEnv
    from worldloop.tasks.robots.franka import FrankaArm


ROT_SPEED = 2.0
"""[rad/s] largest commanded hand rotation speed."""


@dataclass
class Waypoint:
    """One phase of a scripted controller, batched over envs."""

    pos: torch.Tensor | None
    """``(N, 3)`` [m] grip site target, world frame; ``None`` holds the commanded grip position the env
    had when it entered the phase."""
    yaw: torch.Tensor
    """``(N,)`` [rad] hand yaw about world z (hand pointing down); see :func:`down_quat`."""
    close: bool
    """Gripper command during the phase."""
    tol: float = 0.01
    """[m] grip-to-target distance at which the phase is done (the hand must also be within 0.1 rad of
    its target orientation)."""
    wait: float = 0.0
    """[s] time spent in the phase before it may end (e.g. to let the fingers close)."""
    speed: float = 0.5
    """[m/s] largest commanded grip site speed."""


class PhaseMachine:
    """Per-env phase index and steps spent in it, for a batched scripted controller."""

    def __init__(self, env: BatchedEnv) -> None:
        self.env = env
        self.device = env.device
        self.phase = torch.zeros(env.num_envs, dtype=torch.long, device=env.device)
        """``(N,)`` index of the current phase."""
        self.steps = torch.zeros_like(self.phase)
        """``(N,)`` policy steps spent in the current phase."""
        self.anchor = torch.zeros(env.num_envs, 3, device=env.device)
        """``(N, 3)`` [m] commanded grip position when the env entered its current phase."""

    def goto(self, mask: torch.Tensor, phase: int) -> None:
        """Send the envs in ``mask`` ``(N,)`` to ``phase`` (restarting its step count)."""
        self.phase = torch.where(mask, phase, self.phase)
        self.steps = torch.where(mask, 0, self.steps)

    def act(self, arm: FrankaArm, phases: list[Waypoint]) -> torch.Tensor:
        """Actions ``(N, action_dim)`` towards each env's current waypoint; advances finished phases."""
        if self.device.type != "cpu":
            return self._act(arm, phases)
        # Small tensors: on a busy CPU torch's thread barrier costs more than threads save (see
        # BatchedEnv.step, which does the same).
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._act(arm, phases)
        finally:
            torch.set_num_threads(n)

    def _act(self, arm: FrankaArm, phases: list[Waypoint]) -> torch.Tensor:
        # A fresh episode (no step taken yet) starts at phase 0: the expert needs no reset call.
        self.goto(self.env.episode_length_buf == 0, 0)
        idx = self.phase.clamp(max=len(phases) - 1)
        self.anchor = torch.where((self.steps == 0).unsqueeze(-1), arm.grip_pose_cmd()[0], self.anchor)
        col = idx.view(1, -1, 1)
        pos = torch.stack([self.anchor if p.pos is None else p.pos for p in phases])
        pos = pos.gather(0, col.expand(1, -1, 3))[0]
        yaw = torch.stack([p.yaw for p in phases]).gather(0, col[..., 0])[0]
        pick = self._per_phase(phases, idx)
        close = pick("close").bool()
        quat = down_quat(yaw)
        dt = self.env.step_dt
        actions = arm.actions_toward(pos, quat, close, max_step=pick("speed") * dt, max_rot_step=ROT_SPEED * dt)
        reached = (norm(arm.grip_pos_w() - pos) < pick("tol")) & (orientation_error(arm.grip_quat_w(), quat) < 0.1)
        done = reached & (self.steps >= torch.round(pick("wait") / dt)) & (idx < len(phases) - 1)
        self.steps = torch.where(done, 0, self.steps + 1)
        self.phase = self.phase + done.long()
        return actions

    def _per_phase(self, phases: list[Waypoint], idx: torch.Tensor):
        def pick(name: str) -> torch.Tensor:
            values = torch.tensor([float(getattr(p, name)) for p in phases], device=idx.device)
            return values[idx]

        return pick
