"""A held-out "reality": robot logs from the same scene with hidden physical changes and sensor noise.

    truth = collect_reality("Franka-Lift-v0", "reality/lift", episodes=16)
    truth["changes"]     # {"object_mass": 1.6, ...}: what system identification should find

With no robot attached, a benchmark of system identification needs logs whose true parameters are
known to the benchmark and hidden from the fit. This records a task's scripted expert in a copy of
the task's scene whose physics differs from the nominal one by :data:`HIDDEN_CHANGES` (factors of the
nominal value; latency in control steps), and writes what a real robot would log (the layout of
:mod:`worldloop.sim2real.logs`): the actions sent, the measured joints and object pose with gaussian
sensor noise, and the measured arm torques with noise. The dataset holds no randomization draws and
no trace of the changes; the truth is returned, and kept beside the data in ``hidden_truth.json``
(which nothing in worldloop's fitting reads).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch

from worldloop.data import layout
from worldloop.data.collect import coord_names, robot_type
from worldloop.data.writer import DatasetWriter
from worldloop.envs.randomization import RandTerm
from worldloop.sim2real.tracking import actuator_ids, actuator_params, coord_index, servo_effort
from worldloop.tasks import make

_FIT = {"mode": "startup", "shared": True}
FRANKA_PARAMS: dict[str, RandTerm] = {
    "object_mass": RandTerm(kind="body_mass", targets="cube", range=(0.25, 4.0), **_FIT),
    "object_friction": RandTerm(kind="geom_friction", targets="cube", range=(0.2, 2.0), **_FIT),
    "arm_kp": RandTerm(kind="actuator_stiffness", targets="actuator[1-7]", range=(0.5, 1.5), **_FIT),
    "arm_damping": RandTerm(kind="dof_damping", targets="joint[1-7]", range=(0.1, 10.0), **_FIT),
    "latency": RandTerm(kind="action_latency", range=(0, 3), mode="startup"),
}
"""Physical parameters of the Franka cube scenes (``op="scale"`` factors of the nominal value, latency
in whole control steps) with the bounds a fit searches: what :func:`collect_reality` can change and
:func:`~worldloop.sim2real.sysid.identify` can fit (by default all of them; ``worldloop sim2real``
fits ``object_friction``, ``arm_kp`` and ``latency``, what kinematic logs identify, and ``object_mass`` from
static holds)."""

HIDDEN_CHANGES: dict[str, float] = {"object_mass": 1.6, "object_friction": 0.6, "arm_kp": 0.8, "latency": 1.0}
"""The default hidden reality (issue 16's example): cube mass x1.6, cube friction x0.6, arm servo
stiffness x0.8, one control step of action latency; arm joint damping unchanged."""

JOINT_NOISE = 1e-3
"""[rad, m] Std of the gaussian noise on measured joints and object positions (a Franka's joint
encoders resolve ~1e-4 rad; 1e-3 also covers an object pose from vision)."""
EFFORT_NOISE = 0.05
"""[N m] Std of the gaussian noise on measured torques (Franka FR3 joint torque sensors: ~0.05 N m)."""


class FlickProbe:
    """A friction probe for the Franka cube scenes (``Franka-Push-v0``): the closed hand comes down
    behind the cube, strikes it at the hand's top speed toward the task's goal and stops, and the
    cube slides on alone until friction stops it, ``v^2 / (2 mu g)`` later; then the hand lifts.

    A real lab runs such an excitation for identification. Expert pushes keep the hand on the cube,
    and quasi-static pushing barely depends on the table's friction (Mason, "Mechanics of robotic
    manipulation", 2001): a free slide is what makes friction visible in kinematic logs."""

    def __init__(self, env) -> None:
        from worldloop.tasks.robots.scripted import PhaseMachine

        self.env, self.task = env, env.task
        self.fsm = PhaseMachine(env)
        self.target = torch.zeros(env.num_envs, 3, device=env.device)

    def __call__(self, obs=None) -> torch.Tensor:
        from worldloop.tasks.franka_push import CUBE_HALF, PUSH_Z
        from worldloop.tasks.robots.franka import nearest_yaw
        from worldloop.tasks.robots.scripted import Waypoint

        task, fsm = self.task, self.fsm
        cube = task._cube()[0]
        d = task.goal_pos_w[:, :2] - cube[:, :2]
        d = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        yaw = nearest_yaw(torch.atan2(d[:, 1], d[:, 0]), task.arm.grip_yaw(), math.pi)
        behind = torch.cat((cube[:, :2] - d * (CUBE_HALF + 0.05), torch.full_like(d[:, :1], PUSH_Z)), -1)
        # The strike ends where the cube's centre was when the hand was behind it: 2.5 cm of contact.
        aim = torch.cat((cube[:, :2], torch.full_like(d[:, :1], PUSH_Z)), -1)
        self.target = torch.where(((fsm.phase <= 1) | (self.env.episode_length_buf == 0))[:, None], aim, self.target)
        up = self.target + torch.tensor([0.0, 0.0, 0.1], device=self.env.device)
        return fsm.act(
            task.arm,
            [
                Waypoint(pos=behind + torch.tensor([0.0, 0.0, 0.08], device=self.env.device), yaw=yaw, close=True,
                         tol=0.01, speed=0.75),
                Waypoint(pos=behind, yaw=yaw, close=True, tol=0.006, speed=0.3, wait=0.3),
                Waypoint(pos=self.target, yaw=yaw, close=True, tol=0.006, speed=2.0),
                Waypoint(pos=None, yaw=yaw, close=True, tol=0.0, wait=0.5),
                Waypoint(pos=up, yaw=yaw, close=True, tol=0.0, speed=0.25),
            ],
        )  # fmt: skip


class HoldProbe:
    """A payload probe for ``Franka-Lift-v0``: the task's expert grasps the cube and lifts it; once the
    cube is :attr:`HEIGHT` above where it started the arm stops (zero actions, gripper closed) and holds
    it still to the end of the episode.

    A real lab weighs a payload this way: in a static hold the joint torques carry gravity alone
    (:mod:`~worldloop.sim2real.statics`). The expert's own hold keeps chasing the goal, and with a step
    of action latency its full-gain corrections ring, so its torques are never static."""

    HEIGHT = 0.06
    """[m] Lift above the start that begins the hold."""

    def __init__(self, env) -> None:
        self.env, self.task = env, env.task
        self.start_z = torch.zeros(env.num_envs, device=env.device)
        self.holding = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)

    def __call__(self, obs=None) -> torch.Tensor:
        task, env = self.task, self.env
        z = task._cube()[0][:, 2]
        new = env.episode_length_buf == 0
        self.start_z = torch.where(new, z, self.start_z)
        self.holding = ~new & (self.holding | (z > self.start_z + self.HEIGHT))
        act = task.expert()
        hold = torch.zeros_like(act)
        hold[:, -1] = -1.0  # gripper closed
        return torch.where(self.holding[:, None], hold, act)


PROBES = {"expert": None, "flick": FlickProbe, "hold": HoldProbe}
"""Policies :func:`collect_reality` records: the task's expert or a probe class ``(env) -> policy``."""
PROBE_TASKS = {"flick": "Franka-Push-", "hold": "Franka-Lift-"}
"""The task ids (by prefix) whose scenes and goals each probe is written for."""


def check_reality_item(item: str) -> tuple[str, str]:
    """``TASK`` or ``TASK:PROBE`` -> ``(task, policy)``, refused before anything runs.

    Raises:
        KeyError: an unknown task id (the message lists the registered ones).
        ValueError: an unknown probe, or a probe on a task it is not written for (the message says which).
    """
    from worldloop.tasks import get_task

    task, _, policy = item.partition(":")
    policy = policy or "expert"
    get_task(task)
    if policy not in PROBES:
        raise ValueError(f"reality {item!r}: no probe {policy!r}; probes: {sorted(PROBES)}")
    prefix = PROBE_TASKS.get(policy)
    if prefix is not None and not task.startswith(prefix):
        raise ValueError(f"reality {item!r}: the {policy} probe is written for {prefix}* tasks, not {task}")
    return task, policy


def collect_reality(
    task: str,
    out: str | Path,
    *,
    episodes: int,
    changes: dict[str, float] | None = None,
    params: dict[str, RandTerm] | None = None,
    joint_noise: float = JOINT_NOISE,
    effort_noise: float = EFFORT_NOISE,
    seed: int = 0,
    backend: str = "mujoco",
    policy: str = "expert",
) -> dict[str, Any]:
    """Record ``episodes`` expert episodes of ``task`` under hidden changes into the dataset ``out``.

    Args:
        task: a task with a scripted expert (``Franka-Lift-v0``, ``Franka-Push-v0``, ...).
        out: dataset directory (must not hold a dataset).
        episodes: episodes to record (one env each).
        changes: ``{param: value}`` over ``params`` (default :data:`HIDDEN_CHANGES`).
        params: the parameter terms the changes refer to (default :data:`FRANKA_PARAMS`).
        joint_noise: [rad, m] std of the noise on measured joints and object positions.
        effort_noise: [N m] std of the noise on measured torques.
        seed: env and noise seed.
        backend: the physics of the "reality".
        policy: ``"expert"`` (the task's scripted expert), ``"flick"`` (:class:`FlickProbe`, a friction
            probe for ``Franka-Push-v0``) or ``"hold"`` (:class:`HoldProbe`, a payload probe for
            ``Franka-Lift-v0``).

    Returns:
        ``{"task", "changes", "joint_noise", "effort_noise", "episodes", "success_rate"}``, also written
        to ``out/hidden_truth.json``.

    Raises:
        KeyError: a change names no parameter.
    """
    changes = dict(HIDDEN_CHANGES if changes is None else changes)
    params = dict(FRANKA_PARAMS if params is None else params)
    if policy not in PROBES:
        raise ValueError(f"policy must be one of {sorted(PROBES)}, got {policy!r}")
    unknown = sorted(set(changes) - set(params))
    if unknown:
        raise KeyError(f"changes {unknown} name no parameter; parameters: {sorted(params)}")
    terms = {k: params[k] for k in changes}
    env = make(task, num_envs=episodes, backend=backend, seed=seed, randomization=terms)
    try:
        for k, v in changes.items():
            env.randomizer.set(k, v)
        m = env.mj_model
        coords = [c for c in coord_names(m, "qpos")]
        idx = coord_index(env, coords).to(env.device)
        arm = [
            mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, i)
            for i in range(m.nu)
            if m.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT and m.actuator_biasprm[i, 1] != 0
        ]
        eff_ids = actuator_ids(env, arm)
        gain, bias = actuator_params(env)
        obs, _ = env.reset()
        act = env.task.expert if policy == "expert" else PROBES[policy](env)
        T = env.max_episode_length
        qs, effs, acts = [], [], []
        success = torch.zeros(episodes, dtype=torch.bool)
        for t in range(T):
            qs.append(env.qpos[:, idx].cpu())
            e = servo_effort(env, eff_ids, gain, bias).cpu()
            effs.append(torch.zeros_like(e) if t == 0 else e)
            a = act()
            acts.append(a.cpu())
            _, _, _, _, info = env.step(a)
            success = info["success"].cpu()
    finally:
        env.close()
    g = np.random.default_rng(seed + 7919)
    q = torch.stack(qs, 1).numpy()
    q = q + g.normal(0.0, joint_noise, q.shape) * _noisy(coords)
    eff = torch.stack(effs, 1).numpy()
    eff = eff + g.normal(0.0, effort_noise, eff.shape)
    act = torch.stack(acts, 1).numpy()
    features = {
        "action": layout.feature("float32", act.shape[-1], [f"a[{i}]" for i in range(act.shape[-1])]),
        "observation.qpos": layout.feature("float32", len(coords), coords),
        "observation.effort": layout.feature("float32", len(arm), arm),
    }
    out = Path(out)
    writer = DatasetWriter(
        out,
        features=features,
        fps=1.0 / env.step_dt,
        robot_type=robot_type(env),
        task=task,
        episode_columns={},
        worldloop={"task": task, "source": "held-out reality (sim2real.reality)"},
    )
    try:
        frames = {
            "action": act.reshape(-1, act.shape[-1]).astype(np.float32),
            "observation.qpos": q.reshape(-1, len(coords)).astype(np.float32),
            "observation.effort": eff.reshape(-1, len(arm)).astype(np.float32),
        }
        writer.add(frames, np.full(episodes, T), {})
        writer.commit()
    finally:
        writer.close()
    truth = {
        "task": task,
        "policy": policy,
        "changes": changes,
        "joint_noise": joint_noise,
        "effort_noise": effort_noise,
        "episodes": episodes,
        "success_rate": float(success.float().mean()),
    }
    (out / "hidden_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def _noisy(coords: list[str]) -> np.ndarray:
    """Noise mask over coordinates: joints and object positions, not quaternion components."""
    return np.array([0.0 if c.rsplit(".", 1)[-1] in ("qw", "qx", "qy", "qz") else 1.0 for c in coords])
