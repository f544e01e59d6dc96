"""Physics fidelity: each physical claim checked by a measurement (a slide distance, a fall time, a
drift), on both backends where the claim is the scene's and not one backend's.

Expected values are what a correct rigid-body simulation gives: a cube launched along the table at
``v`` stops after ``v^2 / (2 mu g)``; a dropped body falls ``g t^2 / 2``; a zero action holds a
position-controlled arm still; a Panda's joints move no faster than Franka's published limits.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

import worldloop
from worldloop.envs.randomization import RandTerm
from worldloop.tasks.robots.franka import FINGER_VEL_LIMIT, JOINT_VEL_LIMITS, down_quat

G = 9.81
BACKENDS = ["mujoco", pytest.param("newton", marks=pytest.mark.slow)]
CUBE_SCENE = dict(scene="franka_cube.xml", joint_noise=0.0, action_space="joint_pos")
"""Franka-Reach-v0 on the cube scene, every env at ``home``: the arm holds still above the table."""


def cube_env(terms: dict | None = None, num_envs: int = 3, backend: str = "mujoco"):
    return worldloop.make("Franka-Reach-v0", num_envs=num_envs, backend=backend, randomization=terms or {},
                          episode_length_s=60.0, **CUBE_SCENE)  # fmt: skip


def place_cube(env, pos, vel=(0.0, 0.0, 0.0)) -> int:
    """Put the cube at ``pos`` (N, 3) moving at ``vel`` (N, 3) in every env; the arm stays at ``home``.
    Returns the cube's qpos address."""
    adr = int(env.mj_model.joint("cube_joint").qposadr[0])
    dof = int(env.mj_model.joint("cube_joint").dofadr[0])
    n = env.num_envs
    qpos = env.qpos.clone()
    qvel = torch.zeros_like(env.qvel)
    qpos[:, adr : adr + 3] = torch.as_tensor(pos, dtype=torch.float32).expand(n, 3)
    qpos[:, adr + 3 : adr + 7] = torch.tensor([1.0, 0, 0, 0])
    qvel[:, dof : dof + 3] = torch.as_tensor(vel, dtype=torch.float32).expand(n, 3)
    env.set_state(qpos, qvel)
    return adr


def run(env, steps: int, actions: torch.Tensor | None = None, every=None):
    a = torch.zeros(env.num_envs, env.action_dim) if actions is None else actions
    for _ in range(steps):
        env.step(a)
        if every is not None:
            every()


# ---------------------------------------------------------------------- 1. friction acts
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cube_slides_as_far_as_its_friction_says(backend):
    """Coulomb friction: a cube launched at v stops after v^2 / (2 mu g). MuJoCo takes a contact's
    friction from the geom of higher ``priority`` (else the larger of the two); objects outrank the
    table and the finger pads, so the cube's own value governs (before: 39.4 mm at every mu <= 1)."""
    env = cube_env({"friction": RandTerm(kind="geom_friction", targets="cube", range=(0.1, 1.0), op="abs")},
                   backend=backend)  # fmt: skip
    mu = torch.tensor([0.1, 0.3, 0.6])
    env.randomizer.set("friction", mu.unsqueeze(-1))
    env.reset()
    v = 1.0  # [m/s] along +y, from y = -0.3 (the table's edge is at y = 0.6)
    adr = place_cube(env, (0.5, -0.3, 0.025), (0.0, v, 0.0))
    run(env, 75)  # 1.5 s; the slowest (mu = 0.1) stops after 1.02 s
    slid = env.qpos[:, adr + 1] + 0.3
    expected = v**2 / (2 * mu * G)
    assert torch.allclose(slid, expected, rtol=0.2), (slid, expected)
    assert env.randomizer.physical("friction")[:, 0].tolist() == pytest.approx(mu.tolist())


def test_a_friction_term_the_contact_would_ignore_is_refused():
    """The table's friction never reaches a cube contact (the cube outranks it): refused by name."""
    with pytest.raises(ValueError, match=r"'table_mu'.*priority.*cube"):
        cube_env({"table_mu": RandTerm(kind="geom_friction", targets="table", range=(0.2, 0.5))})


# ---------------------------------------------------------------------- 2. contacts are stiff
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cube_rests_and_lands_on_the_table_without_sinking(backend):
    """At rest, dropped from 0.5 m, and thrown down at 10 m/s (50 mm per physics step), a 5 cm cube ends
    on the table top: centre at 25 mm within 2 mm, never below 20 mm (before: 14 mm dropped, through
    the table when thrown)."""
    env = cube_env(num_envs=3, backend=backend)
    adr = place_cube(env, torch.tensor([[0.5, -0.2, 0.025], [0.5, 0.0, 0.5], [0.5, 0.2, 0.2]]),
                     torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, -10.0]]))  # fmt: skip
    lowest = env.qpos[:, adr + 2].clone()

    def track():
        torch.minimum(lowest, env.qpos[:, adr + 2], out=lowest)

    run(env, 50, every=track)  # 1 s
    z = env.qpos[:, adr + 2]
    assert torch.allclose(z, torch.full_like(z, 0.025), atol=0.001), z
    assert (lowest[:2] > 0.020).all(), lowest  # at rest and landing at 3.1 m/s: < 5 mm in, at any time
    assert lowest[2] > -0.05, lowest  # 10 m/s: 50 mm per physics step, caught by the 0.2 m thick table


@pytest.mark.parametrize("backend", BACKENDS)
def test_free_fall_takes_the_time_gravity_says(backend):
    """A cube dropped from rest falls g t^2 / 2: after 0.2 s it has fallen 196 mm."""
    env = cube_env(num_envs=1, backend=backend)
    adr = place_cube(env, (0.5, 0.0, 0.5))
    run(env, 10)  # 10 policy steps of 20 ms
    fallen = 0.5 - env.qpos[0, adr + 2].item()
    assert fallen == pytest.approx(0.5 * G * 0.2**2, rel=0.03)


def test_the_closed_hand_pressing_a_cube_down_sinks_it_a_few_millimetres():
    """The hand pushing down on a cube with everything the servos give (before: the centre 5 mm above
    the table, 20 mm into it)."""
    env = worldloop.make(
        "Franka-Lift-v0", num_envs=2, randomization={}, joint_noise=0.0, action_space="ee_pos", episode_length_s=60.0
    )
    env.reset()
    arm = env.task.arm
    grip = arm.grip_pos_w()
    place_cube(env, torch.cat((grip[:, :2], torch.full((2, 1), 0.025)), -1))
    down = torch.tensor([0.0, 0.0, -1.0, 0.0, -1.0]).expand(2, 5)  # down, fingers closed
    adr = int(env.mj_model.joint("cube_joint").qposadr[0])
    lowest = env.qpos[:, adr + 2].clone()
    run(env, 100, down, every=lambda: torch.minimum(lowest, env.qpos[:, adr + 2], out=lowest))
    assert (lowest > 0.025 - 0.004).all(), lowest


# ---------------------------------------------------------------------- 3. IK holds and obeys
def hold_drift(task: str, action_space: str, steps: int, grip_pos=None, backend: str = "mujoco") -> torch.Tensor:
    """Largest grip-site displacement [m] of each env over ``steps`` zero actions."""
    env = worldloop.make(task, num_envs=2, backend=backend, randomization={}, joint_noise=0.0,
                         action_space=action_space, episode_length_s=60.0)  # fmt: skip
    env.reset()
    arm = env.task.arm
    if grip_pos is not None:
        pos = torch.as_tensor(grip_pos, dtype=torch.float32).expand(2, 3)
        qpos = env.qpos.clone()
        qpos[:, arm.q_ids] = arm.solve_ik(pos, down_quat(torch.zeros(2)))
        env.set_state(qpos, torch.zeros_like(env.qvel))
    start = arm.grip_pos_w().clone()
    worst = torch.zeros(2)
    for _ in range(steps):
        env.step(torch.zeros(2, env.action_dim))
        worst = torch.maximum(worst, (arm.grip_pos_w() - start).norm(dim=-1))
    return worst


@pytest.mark.parametrize("action_space", ["ee_delta", "ee_pos"])
@pytest.mark.parametrize("grip_pos", [None, (0.65, 0.3, 0.08), (0.35, -0.45, 0.35)])
def test_a_zero_ik_action_holds_the_hand_anywhere(action_space, grip_pos):
    """5 s of zero actions move the hand < 1 mm, at the start pose and at full reach (before: 7-8 mm
    in 2 s at the start, ~70 mm in 5 s at full reach)."""
    drift = hold_drift("Franka-Lift-v0", action_space, 250, grip_pos)
    assert (drift < 0.001).all(), drift


@pytest.mark.parametrize("action_space", ["ee_delta", "ee_pos"])
def test_pressing_into_the_table_leaves_the_hand_where_the_table_stops_it(action_space):
    """3 s of "straight down" onto the bare table: the hand stays above its start within 3 cm laterally
    and does not pass the table top (before the joint-command feedback: up to 71 cm sideways, one env
    below the table top; without ``ee_stall_lead``, as ``Franka-Lift-v0`` still runs: 3.6-7.1 cm, the servos
    pushing with their full torque while MuJoCo's soft friction lets the pads creep). Lift-v1 runs the
    arm's default stall lead."""
    n = 4
    env = worldloop.make("Franka-Lift-v1", num_envs=n, randomization={}, action_space=action_space,
                         episode_length_s=60.0)  # fmt: skip
    env.reset()
    place_cube(env, (0.9, 0.5, 0.025))  # out of the way
    arm = env.task.arm
    start = arm.grip_pos_w().clone()
    a = torch.zeros(n, env.action_dim)
    a[:, 2] = -1.0
    a[:, -1] = -1.0  # fingers closed: the pads reach lowest
    lowest = start[:, 2].clone()
    run(env, 150, a, every=lambda: torch.minimum(lowest, arm.grip_pos_w()[:, 2], out=lowest))
    lateral = (arm.grip_pos_w()[:, :2] - start[:, :2]).norm(dim=-1)
    assert (lateral < 0.03).all(), lateral
    assert (lowest > -0.005).all(), lowest  # the pad tips end ~9 mm below the grip site
    # The force it presses with is bounded (before ``ee_stall_lead``: 400-500 N, joint 2 at its 87 N m
    # torque limit; after: 180-300 N, joint 2 at 65-70 N m).
    force, torque = table_load(env)
    assert (force > 50.0).all() and (force < 350.0).all(), force
    assert (torque[:, 1] < 80.0).all(), torque


def table_load(env) -> tuple[torch.Tensor, torch.Tensor]:
    """Per env: the normal force ``(N,)`` [N] of every contact on the table, and the actuator forces ``(N, 8)``
    (absolute; the arm's 7 in N m, the gripper's in N), from ``mj_forward`` on the env's state and controls."""
    m = env.mj_model
    d = mujoco.MjData(m)
    table = m.geom("table").id
    f6 = np.zeros(6)
    force, torque = [], []
    for i in range(env.num_envs):
        d.qpos[:], d.qvel[:], d.ctrl[:] = env.qpos[i].numpy(), env.qvel[i].numpy(), env.ctrl[i].numpy()
        mujoco.mj_forward(m, d)
        total = 0.0
        for c in range(d.ncon):
            if table in (d.contact[c].geom1, d.contact[c].geom2):
                mujoco.mj_contactForce(m, d, c, f6)
                total += f6[0]
        force.append(total)
        torque.append(np.abs(d.actuator_force))
    return torch.tensor(force), torch.tensor(np.array(torque))


def test_a_stall_lead_that_is_not_positive_is_refused():
    with pytest.raises(ValueError, match=r"ee_stall_lead must be > 0 m or None"):
        worldloop.make("Franka-Lift-v0", num_envs=1, action_space="ee_pos", ee_stall_lead=0.0)


def test_a_finger_speed_limit_that_is_not_positive_is_refused():
    with pytest.raises(ValueError, match=r"finger_speed_limit must be > 0 m/s or None"):
        worldloop.make("Franka-Lift-v1", num_envs=1, finger_speed_limit=-0.2)


# ---------------------------------------------------------------------- 4. every action space holds
HOLD_CASES = [
    (task, space)
    for task in (
        "Franka-Reach-v0",
        "Franka-Lift-v0",
        "Franka-Push-v0",
        "Franka-Open-Drawer-v0",
        "Franka-Peg-Insert-v0",
        "Franka-Stack-v1",
    )  # fmt: skip
    for space in ("joint_delta", "ee_delta", "ee_pos")
]


@pytest.mark.parametrize(("task", "action_space"), HOLD_CASES)
def test_a_zero_action_holds_the_pose_in_every_task(task, action_space):
    """0.5 s of zero actions from the reset pose move the grip < 0.5 mm (before: Reach sagged 2.7 mm)."""
    drift = hold_drift(task, action_space, 25)
    assert (drift < 0.0005).all(), drift


@pytest.mark.slow
@pytest.mark.parametrize("action_space", ["joint_delta", "ee_pos"])
def test_reach_holds_its_pose_on_newton(action_space):
    drift = hold_drift("Franka-Reach-v0", action_space, 25, backend="newton")
    assert (drift < 0.0005).all(), drift


# ---------------------------------------------------------------------- 5. limits a real arm has
def saturate(joint_action_scale: float, n: int = 16, steps: int = 200):
    """Random +-1 ``joint_pos`` actions, new every 0.2 s: each joint's top speed ``(n, 7)`` [rad/s] and how
    far past its range it went ``(7,)`` [rad]."""
    env = worldloop.make("Franka-Reach-v0", num_envs=n, randomization={}, action_space="joint_pos", seed=1,
                         episode_length_s=60.0, joint_action_scale=joint_action_scale)  # fmt: skip
    env.reset()
    arm = env.task.arm
    g = torch.Generator().manual_seed(0)
    fastest, past = torch.zeros(n, 7), torch.zeros(7)
    for t in range(steps):
        if t % 10 == 0:
            a = torch.randint(0, 2, (n, 7), generator=g).float() * 2 - 1
        env.step(a)
        fastest = torch.maximum(fastest, arm.joint_vel().abs())
        q = env.qpos[:, arm.q_ids]
        past = torch.maximum(past, torch.maximum(q - arm.q_hi, arm.q_lo - q).amax(0))
    return fastest, past


def test_joint_speeds_stay_within_franka_limits():
    """Saturating random ``joint_pos`` actions 0.5 rad around ``home`` (clear of the table, whose impacts
    jolt the wrist) for 4 s: every arm joint below Franka's velocity limit +5% (before: 27-33 rad/s)."""
    fastest, _ = saturate(0.5)
    assert (fastest <= JOINT_VEL_LIMITS * 1.05).all(), fastest.amax(0)
    assert (fastest.amax(0) > JOINT_VEL_LIMITS * 0.5).all(), fastest.amax(0)  # the limits were reached for


def test_joints_stay_within_their_ranges():
    """Saturating random ``joint_pos`` actions over the whole ranges for 4 s: every joint within its range
    +10 mrad (before: 0.08 rad past)."""
    _, past = saturate(2.0)
    assert (past < 0.010).all(), past


def finger_motion(task: str, **overrides):
    """Open the gripper for 0.5 s, then close it for 0.5 s, hand clear of the table and the cube: per policy
    step the fingers' fastest mean speed ``(T,)`` [m/s], and the seconds from "close" to within 1 mm of closed."""
    env = worldloop.make(task, num_envs=2, randomization={}, seed=0, **overrides)
    env.reset()
    arm, dt = env.task.arm, env.step_dt
    steps = round(0.5 / dt)
    a = torch.zeros(2, env.action_dim)
    opening = [arm.finger_opening()]
    for t in range(2 * steps):
        a[:, -1] = 1.0 if t < steps else -1.0
        env.step(a)
        opening.append(arm.finger_opening())
    opening = torch.stack(opening)
    closed_at = int((opening[steps:, 0] < 0.001).nonzero()[0]) * dt
    return (opening.diff(dim=0).abs() / dt).amax(-1), closed_at


@pytest.mark.parametrize("task", ["Franka-Lift-v1", "Franka-Push-v0", "Franka-Open-Drawer-v1", "Franka-Stack-v1"])
def test_fingers_move_no_faster_than_the_franka_hand(task):
    """From reset, closing and opening (50 Hz policies and Push's 20 Hz), every policy step's finger speed is
    within the Franka Hand's 0.2 m/s +5%, and 4 cm close in 0.2-0.3 s (before: 1.34 m/s at 50 Hz, closed in
    0.08 s; Push's fingers snapped shut from open in its first step). ``Franka-Lift-v0`` and
    ``Franka-Open-Drawer-v0`` keep the unlimited fingers their runs were trained with, which the last lines check
    fail the bound."""
    speed, closed_at = finger_motion(task)
    assert (speed <= FINGER_VEL_LIMIT * 1.05).all(), speed.max()
    assert speed.max() > FINGER_VEL_LIMIT * 0.9, speed.max()  # the limit was reached, both ways
    assert 0.2 <= closed_at <= 0.3, closed_at
    fast, fast_closed_at = finger_motion(task, finger_speed_limit=None)  # the check can fail: unlimited fingers
    assert fast.max() > 2 * FINGER_VEL_LIMIT and fast_closed_at < 0.2, (fast.max(), fast_closed_at)


def expert_grasp(num_envs: int = 4, **overrides):
    """A ``Franka-Lift-v1`` env (no randomization) after 3 s of its scripted expert: every env holds the cube."""
    env = worldloop.make("Franka-Lift-v1", num_envs=num_envs, randomization={}, seed=0, **overrides)
    env.reset()
    for _ in range(150):
        env.step(env.task.expert())
    assert (env.task._grasped() > 0).all()
    return env


def gripper_force(env) -> torch.Tensor:
    """``(N,)`` [N] the gripper actuator's force magnitude in each env (``table_load``)."""
    return table_load(env)[1][:, env.mj_model.actuator("gripper").id]


def test_a_slow_gripper_still_squeezes_a_cube_as_hard():
    """The Lift expert's grasp of the cube held 0.5 s: the gripper squeezes as hard with the 0.2 m/s ramp as
    without it (its servo's 2,500 N/m times the 2.4 cm between target and fingers, ~61 N), so the ramp
    slows closing and not the grip."""

    slow, fast = gripper_force(expert_grasp()), gripper_force(expert_grasp(finger_speed_limit=None))
    assert (slow > 50.0).all(), slow
    assert torch.allclose(slow, fast, atol=1.0), (slow, fast)


def test_a_grasp_restored_by_set_state_keeps_squeezing():
    """A Lift expert's grasp written into a fresh env with ``set_state`` (as log replay does), then "close": the
    gripper squeezes at once as hard as in the original env (61 N), instead of its target starting open and
    ramping in at 0.2 m/s (before: 12 N after one step, the fingers pushed apart, the grasp lost)."""
    env = expert_grasp(num_envs=2)
    held = gripper_force(env)
    other = worldloop.make("Franka-Lift-v1", num_envs=2, randomization={}, seed=1)
    other.reset()
    other.set_state(env.qpos.clone(), env.qvel.clone())
    actions = torch.zeros(2, other.action_dim)
    actions[:, -1] = -1.0
    other.step(actions)
    squeeze = gripper_force(other)
    assert torch.allclose(squeeze, held, atol=2.0), (squeeze, held)


@pytest.mark.parametrize("action_space", ["ee_pos", "joint_delta"])
def test_pressing_the_hand_on_the_table_keeps_fingers_and_wrist_in_range(action_space):
    """The closed hand driven down onto the table for 3 s: the fingers stay at their closed stop (within
    1 mm) and joint 6 within its range (5 mrad) (before: fingers 5-8 mm past, joint 6 26-44 mrad past
    with ``ee_pos``; the joint limits were MuJoCo's soft default)."""
    n = 8
    env = worldloop.make("Franka-Lift-v0", num_envs=n, randomization={}, action_space=action_space, seed=3,
                         episode_length_s=60.0)  # fmt: skip
    env.reset()
    place_cube(env, (0.9, 0.5, 0.025))
    arm = env.task.arm
    a = torch.zeros(n, env.action_dim)
    a[:, -1] = -1.0  # closed
    if action_space == "ee_pos":
        a[:, 2] = -1.0  # straight down
    else:
        a[:, 1], a[:, 3] = 1.0, 0.5  # shoulder forward, elbow open: the hand sweeps down into the table
    finger_min = torch.zeros(n)
    j6_past = torch.zeros(n)

    def track():
        torch.minimum(finger_min, env.qpos[:, arm.finger_ids].amin(-1), out=finger_min)
        q6 = env.qpos[:, arm.q_ids[5]]
        torch.maximum(j6_past, torch.maximum(q6 - arm.q_hi[5], arm.q_lo[5] - q6), out=j6_past)

    run(env, 150, a, every=track)
    assert (finger_min > -0.001).all(), finger_min
    assert (j6_past < 0.005).all(), j6_past


# ---------------------------------------------------------------------- 6. impossible values refused
@pytest.mark.parametrize(
    ("term", "words"),
    [
        (RandTerm(kind="body_mass", targets="cube", range=(-0.2, 0.0), op="add"), r"'bad'.*body_mass.*cube.*> 0"),
        (RandTerm(kind="body_mass", targets="cube", range=(0.0, 1.0), op="abs"), r"'bad'.*range.*> 0"),
        (RandTerm(kind="dof_damping", targets="joint1", range=(-5.0, 0.0), op="add"), r"'bad'.*dof_damping.*joint1.*>= 0"),  # noqa: E501
        (RandTerm(kind="geom_friction", targets="cube", range=(-2.0, 0.0), op="add"), r"'bad'.*geom_friction.*>= 0"),
        (RandTerm(kind="dof_armature", targets="joint2", range=(-1.0, 0.0), op="add"), r"'bad'.*dof_armature.*>= 0"),
        (RandTerm(kind="actuator_stiffness", targets="actuator1", range=(-2.0, 1.0)), r"'bad'.*actuator_stiffness.*> 0"),  # noqa: E501
    ],
)  # fmt: skip
def test_physically_impossible_values_are_refused_before_anything_runs(term, words):
    with pytest.raises(ValueError, match=words):
        cube_env({"bad": term})


@pytest.mark.parametrize(("value", "words"), [(0.0, r"'cube_mass'.*0.*> 0"), (-1.0, r"'cube_mass'.*> 0")])
def test_pinned_impossible_values_are_refused(value, words):
    env = cube_env({"cube_mass": RandTerm(kind="body_mass", targets="cube", range=(0.5, 2.0))})
    with pytest.raises(ValueError, match=words):
        env.randomizer.set("cube_mass", value)


# ---------------------------------------------------------------------- the shoulder singularity
@pytest.mark.parametrize("q2", [0.0, 0.1, 0.2, 0.3])
def test_poses_at_the_shoulder_singularity_are_held(q2):
    """Joint 2 near 0 aligns the axes of joints 1 and 3. A fast counter-rotation of 1 and 3 is commanded
    for 0.2 s, then the command held for 2 s: the arm settles (every joint below 0.05 rad/s in the
    last 0.5 s) instead of oscillating."""
    n = 2
    env = worldloop.make(
        "Franka-Reach-v0", num_envs=n, randomization={}, action_space="joint_delta", episode_length_s=60.0
    )
    env.reset()
    arm = env.task.arm
    qpos = env.qpos.clone()
    qpos[:, arm.q_ids[1]] = q2
    qpos[:, arm.q_ids[3]] = -1.5
    env.set_state(qpos, torch.zeros_like(env.qvel))
    spin = torch.zeros(n, env.action_dim)
    spin[:, 0], spin[:, 2] = 1.0, -1.0
    spin[1] *= -1
    run(env, 10, spin)
    late = torch.zeros(7)
    for t in range(100):
        env.step(torch.zeros(n, env.action_dim))
        if t >= 75:
            late = torch.maximum(late, arm.joint_vel().abs().amax(0))
    assert (late < 0.05).all(), late
