"""Object masses from the joint torques of static holds: least squares per frame, no replay.

    est = held_mass(logs, env, "cube")
    est.factor, est.factor_std, est.frames     # e.g. 1.59 +- 0.02 of the nominal mass, from 743 frames

**Physics.** When the arm holds an object still, nothing accelerates, so the arm's actuators carry
gravity alone: ``tau = G_arm(q) + m phi(q, p)`` with ``G_arm`` the arm's own gravity torques (its
nominal link masses, :class:`~worldloop.envs.kinematics.JointGravity`) and
``phi_i = -a_i . ((p - o_i) x g)`` the torque about joint ``i`` (axis ``a_i``, anchor ``o_i``) that a
unit mass at the object's centre ``p`` needs. The grasp's contact forces on the fingers sum to the
object's weight and, as the object is static, have no moment about its centre, so they act on the arm
as the weight at ``p`` would (any grasp, any contact points). ``m`` follows from the measured torque
residual ``tau - G_arm`` and ``phi``: one least-squares value per static frame, and of those the
median weighted by ``|phi|^2``. A position servo's damping (450 N m s/rad on the Panda model) turns a
creep of 5 mrad/s, invisible under 1 mrad of encoder noise, into 2 N m, so frames where the arm was
still settling pass the tests below; they are outliers a mean would follow and the median ignores. This is
the static-pose method of robot payload identification (Khalil & Dombre, "Modeling, Identification
and Control of Robots", 2002, ch. 12). Kinematic logs cannot give it (a held cube's sag under a stiff
servo is below encoder noise, :mod:`~worldloop.sim2real.sysid`); torque logs give it directly.

**Static frames** are those where the object is held off its start height by
:data:`LIFT_MIN`, within :data:`GRIP_MAX` of the grip site; over the ``2 * WINDOW + 1`` frames around
it the arm joints and the object stay within a band (a speed of :data:`JOINT_SPEED_MAX` or
:data:`OBJECT_SPEED_MAX` plus what sensor noise fills) and the torques within :data:`EFFORT_BAND` of
the window's median; and no servo is at its force limit (a saturated servo pushes against something other than gravity).
The standard deviation is a jackknife over
episodes (Efron & Stein 1981): frames of one episode share its grasp and pose, so episodes are the
independent samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import torch

from worldloop.envs.batched_env import BatchedEnv
from worldloop.envs.kinematics import ForwardKinematics, JointGravity
from worldloop.sim2real.logs import LogError, RobotLogs
from worldloop.sim2real.tracking import coord_index

LIFT_MIN = 0.02
"""[m] Height above its start that counts an object as lifted."""
GRIP_MAX = 0.03
"""[m] Largest distance of the object's centre from the grip site for a held object."""
JOINT_SPEED_MAX = 0.05
"""[rad/s] Fastest arm joint speed of a static frame (torque of the servo damping 1 N m s/rad: 0.05 N m)."""
OBJECT_SPEED_MAX = 0.02
"""[m/s] Fastest object speed of a static frame."""
WINDOW = 5
"""Frames each side of a frame in the window the static tests look at (0.1 s at 50 Hz)."""
JOINT_BAND = 6e-3
"""[rad] Band the joints' sensor noise fills over a window (1 mrad noise: max - min of 11 samples ~3.2 mrad)."""
OBJECT_BAND = 6e-3
"""[m] The same for the object's position."""
EFFORT_BAND = 0.5
"""[N m] Largest distance of a static frame's torques from their window's median (0.05 N m noise: a
frame passes; a servo's transient kick, seen as an isolated spike of several N m, does not)."""


@dataclass
class HeldMass:
    """What :func:`held_mass` found."""

    body: str
    mass: float
    """[kg] least-squares mass over all static frames."""
    nominal: float
    """[kg] the scene's mass of the body."""
    std: float
    """[kg] episode jackknife standard deviation of :attr:`mass` (``nan`` with fewer than 2 episodes)."""
    frames: int
    """Static frames used."""
    episodes: int
    """Episodes with at least one static frame."""
    residual_rms: float
    """[N m] RMS torque residual at the fit (sensor noise plus what the model leaves out)."""
    log: str = ""
    """Name of the log set the frames came from (set by :func:`~worldloop.sim2real.sysid.identify`)."""

    def summary(self) -> dict:
        """The fit's evidence as plain data (for ``report.json``)."""
        keys = ("log", "frames", "episodes", "residual_rms", "mass", "nominal")
        return {k: getattr(self, k) for k in keys}

    @property
    def factor(self) -> float:
        """:attr:`mass` as a factor of the nominal mass (what a ``body_mass`` scale term holds)."""
        return self.mass / self.nominal

    @property
    def factor_std(self) -> float:
        return self.std / self.nominal


def held_mass(logs: RobotLogs, env: BatchedEnv, body: str) -> HeldMass:
    """Mass of the free body ``body`` from the torques of the frames where the arm holds it still.

    Args:
        logs: robot logs with measured torques (``observation.effort``), the arm joints and the body's
            free joint among the measured coordinates (``<joint>.x``, ``.y``, ``.z`` ...).
        env: an env of the logs' scene (for its model: link masses, joint axes, the grip site).
        body: the held body's name in the scene.

    Returns:
        :class:`HeldMass`.

    Raises:
        LogError: no torques, the body's or an arm joint's coordinates are not logged, or no static
            frame with the body held (the message says which test the frames failed).
    """
    m = env.mj_model
    if logs.effort is None or not logs.effort_names:
        raise LogError(f"{logs.source}: no torque columns (observation.effort): a held mass needs measured torques")
    bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, body)
    if bid < 0 or m.body_jntnum[bid] != 1 or int(m.jnt_type[m.body_jntadr[bid]]) != int(mujoco.mjtJoint.mjJNT_FREE):
        raise ValueError(f"{body!r} is not a free body of the scene {env.scene_path.name}")
    free = m.joint(int(m.body_jntadr[bid])).name
    # The torque columns of hinge joints (a gripper's slide joints carry the grasp, not the weight).
    hinge = int(mujoco.mjtJoint.mjJNT_HINGE)
    acts = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, a) for a in logs.effort_names]
    cols, joints = [], []
    for c, a in enumerate(acts):
        j = int(m.actuator_trnid[a, 0])
        if int(m.jnt_type[j]) == hinge:
            cols.append(c)
            joints.append(j)
    names = [m.joint(j).name for j in joints]
    missing = [c for c in (*names, f"{free}.x", f"{free}.y", f"{free}.z") if c not in logs.coords]
    if missing:
        raise LogError(f"{logs.source}: coordinates {missing} are not logged; a held mass needs the arm joints "
                       f"and the object's position")  # fmt: skip

    # Full qpos per frame: logged coordinates over the scene's first state.
    E, T = logs.measured.shape[:2]
    idx = coord_index(env, logs.coords)
    qpos = torch.as_tensor(m.qpos0, dtype=torch.float64).expand(E, T, -1).clone()
    qpos[..., idx] = logs.measured.double()
    col = {c: i for i, c in enumerate(logs.coords)}
    q = logs.measured[..., [col[n] for n in names]].double()  # (E, T, J)
    p = logs.measured[..., [col[f"{free}.{a}"] for a in "xyz"]].double()  # (E, T, 3)

    fk = ForwardKinematics(m, torch.device("cpu"), dtype=torch.float64)
    grav = JointGravity(fk, joints)
    site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "grip")
    bodies = fk.ancestors(grav.bodies + ([int(m.site_bodyid[site])] if site >= 0 else []))
    poses = fk.body_poses(qpos.reshape(E * T, -1), bodies)
    g_arm = grav(poses).reshape(E, T, -1)
    axis, anchor = fk.joint_frames(poses, grav.joint_ids)
    g = torch.as_tensor(m.opt.gravity, dtype=torch.float64)
    phi = -(axis * torch.cross(p.reshape(E * T, 1, 3) - anchor, g.expand_as(anchor), dim=-1)).sum(-1)
    phi = phi.reshape(E, T, -1)
    effort = logs.effort.double()[..., cols]
    resid = effort - g_arm
    ep = torch.arange(E)[:, None].expand(E, T)

    # Static, held frames: over a window of 2 * WINDOW + 1 frames the joints, the object and the torques
    # each stay within a band (a short oscillation would pass a test on the mean speed), and no servo
    # is at its force limit (a saturated servo pushes against something other than gravity).
    w = WINDOW

    def windows(x: torch.Tensor) -> torch.Tensor:
        return x.unfold(1, 2 * w + 1, 1)  # (E, T - 2w, C, 2w + 1)

    def inner(v: torch.Tensor) -> torch.Tensor:
        """``(E, T)`` from ``(E, T - 2w)`` values of the frames with a whole window (inf at the ends)."""
        out = torch.full((E, T), float("inf"), dtype=v.dtype)
        out[:, w : T - w] = v
        return out

    def band(x: torch.Tensor) -> torch.Tensor:
        """``(E, T)`` largest max-minus-min over the window of any column of ``x`` ``(E, T, C)``."""
        win = windows(x)
        return inner((win.amax(-1) - win.amin(-1)).amax(-1))

    def off_median(x: torch.Tensor) -> torch.Tensor:
        """``(E, T)`` largest distance of a frame's value from its window's median, over the columns."""
        return inner((x[:, w : T - w] - windows(x).median(-1).values).abs().amax(-1))

    dt = 1.0 / logs.fps
    valid = logs.valid & (torch.arange(T) >= w) & (torch.arange(T)[None, :] < logs.lengths[:, None] - w)
    lifted = p[..., 2] > p[:, :1, 2] + LIFT_MIN
    tests = {"lifted": lifted & valid}
    if site >= 0:
        grip = fk.site_pos(poses, site).reshape(E, T, 3)
        tests["in the grip"] = tests["lifted"] & ((p - grip).norm(dim=-1) < GRIP_MAX)
    tests["arm still"] = next(reversed(tests.values())) & (band(q) < JOINT_SPEED_MAX * 2 * w * dt + JOINT_BAND)
    tests["object still"] = tests["arm still"] & (band(p) < OBJECT_SPEED_MAX * 2 * w * dt + OBJECT_BAND)
    tests["torques steady"] = tests["object still"] & (off_median(effort) < EFFORT_BAND)
    limit = torch.as_tensor(m.actuator_forcerange[[acts[c] for c in cols]], dtype=torch.float64)
    limited = torch.as_tensor(m.actuator_forcelimited[[acts[c] for c in cols]].astype(bool))
    saturated = limited & ((effort <= 0.98 * limit[:, 0]) | (effort >= 0.98 * limit[:, 1]))
    tests["no servo saturated"] = tests["torques steady"] & ~saturated.any(-1)
    use = tests["no servo saturated"]
    if not bool(use.any()):
        counts = ", ".join(f"{k}: {int(v.sum())}" for k, v in tests.items())
        raise LogError(f"{logs.source}: no frame holds {body!r} still off the table ({counts} frames pass each test "
                       f"in turn); log a lift and a still hold (worldloop's HoldProbe: --reality-tasks "
                       f"Franka-Lift-v0:hold)")  # fmt: skip

    # Each frame's own least-squares mass, weighted by how much the mass moves its torques; their weighted
    # median ignores frames that passed the tests while the arm still crept (module docstring).
    est = (phi * resid).sum(-1) / (phi * phi).sum(-1).clamp(min=1e-12)  # (E, T) [kg]
    weight = (phi * phi).sum(-1)
    mass = _weighted_median(est[use], weight[use])
    eps = [e for e in range(E) if bool(use[e].any())]
    std = float("nan")
    if len(eps) > 1:
        loo = torch.tensor([_weighted_median(est[use & (ep != e)], weight[use & (ep != e)]) for e in eps])
        k = len(eps)
        std = float(((k - 1) / k * ((loo - loo.mean()) ** 2).sum()).sqrt())
    fit = resid - mass * phi
    rms = float((fit[use] ** 2).mean().sqrt())
    return HeldMass(body, mass, float(m.body_mass[bid]), std, int(use.sum()), len(eps), rms)


def _weighted_median(x: torch.Tensor, w: torch.Tensor) -> float:
    """The value below which half of the total weight ``w`` of the samples ``x`` (1-D) lies."""
    order = torch.argsort(x)
    cum = torch.cumsum(w[order], 0)
    return float(x[order][int(torch.searchsorted(cum, 0.5 * cum[-1]))])
