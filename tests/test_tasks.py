"""The task checker: every registered task on every installed backend, plus the pieces the Franka
tasks share (differential IK, gravity compensation, action spaces, reward terms)."""

from __future__ import annotations

import importlib
import math

import mujoco
import numpy as np
import pytest
import torch

import worldloop
from worldloop import rewards
from worldloop.envs.batched_env import load_scene
from worldloop.envs.kinematics import ForwardKinematics, JointGravity, SiteJacobian, quat_rotate
from worldloop.tasks.robots.franka import _cholesky, _cholesky_solve, down_quat

TASKS = [spec.id for spec in worldloop.list_tasks()]


def _newton_available() -> bool:
    try:
        importlib.import_module("worldloop.envs.backends.newton_backend")
    except Exception:  # not installed, or fails to initialise here
        return False
    return True


BACKENDS = [
    "mujoco",
    pytest.param(
        "newton",
        marks=[pytest.mark.newton, pytest.mark.skipif(not _newton_available(), reason="newton backend not importable")],
    ),
]


def _actions(env, t: int) -> torch.Tensor:
    """Deterministic pseudo-random actions in [-1, 1]."""
    g = torch.Generator().manual_seed(1000 + t)
    return torch.rand(env.num_envs, env.action_dim, generator=g) * 2 - 1


# ---- the generic checker ---------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task_id", TASKS)
def test_reset_and_step_contract(task_id, backend):
    n = 64  # every task on every backend with a realistic batch (Newton on CPU included)
    env = worldloop.make(task_id, num_envs=n, backend=backend, seed=0)
    obs, _ = env.reset()
    assert set(obs) >= {"policy", "critic"}
    for _ in range(3):
        obs, rew, term, trunc, info = env.step(_actions(env, 0))
    for k in ("policy", "critic"):
        assert obs[k].ndim == 2 and obs[k].shape[0] == n and obs[k].dtype == torch.float32
        assert torch.isfinite(obs[k]).all(), f"{task_id}: non-finite obs[{k!r}]"
    assert rew.shape == term.shape == trunc.shape == (n,) and torch.isfinite(rew).all()
    assert term.dtype == trunc.dtype == torch.bool
    assert info["success"].shape == (n,) and info["success"].dtype == torch.bool
    assert set(info["reward_terms"]) == set(env.cfg.weights), "every weighted term is returned, and only those"
    for name, v in info["reward_terms"].items():
        assert v.shape == (n,) and torch.isfinite(v).all(), f"{task_id}: reward term {name!r}"
    assert int(env.num_physics_resets) == 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task_id", TASKS)
def test_seed_determinism(task_id, backend):
    def run(seed):
        env = worldloop.make(task_id, num_envs=3, backend=backend, seed=seed)
        obs, _ = env.reset()
        first = obs["policy"].clone()
        for t in range(4):
            obs, *_ = env.step(_actions(env, t))
        return first, obs["policy"].clone(), env.qpos.clone()

    a, b, c = run(5), run(5), run(6)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert not torch.equal(a[0], c[0]), "a different seed must give different initial states"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task_id", TASKS)
def test_partial_reset_touches_only_reset_envs(task_id, backend):
    n = 4
    a = worldloop.make(task_id, num_envs=n, backend=backend, seed=3)
    b = worldloop.make(task_id, num_envs=n, backend=backend, seed=3)
    a.reset()
    b.reset()
    for t in range(2):
        a.step(_actions(a, t))
        b.step(_actions(b, t))
    b.episode_length_buf[1] = b.max_episode_length - 1  # env 1 of b times out on the next step
    _, _, _, trunc_a, _ = a.step(_actions(a, 2))
    _, _, _, trunc_b, _ = b.step(_actions(b, 2))
    assert not trunc_a.any() and trunc_b.tolist() == [False, True, False, False]
    assert b.episode_length_buf[1] == 0 and not torch.equal(a.qpos[1], b.qpos[1])
    # The other envs go on exactly as without the reset. (States, not observations: observation
    # noise draws differ once a reset has drawn from the generator.)
    keep = [0, 2, 3]
    for t in range(3, 6):
        torch.testing.assert_close(a.qpos[keep], b.qpos[keep], rtol=0, atol=0)
        torch.testing.assert_close(a.qvel[keep], b.qvel[keep], rtol=0, atol=0)
        a.step(_actions(a, t))
        b.step(_actions(b, t))


EXPERT_TASKS = [t for t in TASKS if worldloop.get_task(t).task_cls.has_expert()]


def evaluate_expert(task_id: str, *, num_envs: int, num_episodes: int, backend: str = "mujoco", seed: int = 0, **cfg):
    env = worldloop.make(task_id, num_envs=num_envs, backend=backend, seed=seed, **cfg)
    try:
        return worldloop.evaluate(env, lambda obs: env.task.expert(), num_episodes)
    finally:
        env.close()


def _latest(task_ids: list[str]) -> list[str]:
    """The newest version of each task family (``Franka-Lift-v1`` over ``Franka-Lift-v0``)."""
    newest: dict[str, tuple[int, str]] = {}
    for t in task_ids:
        family, _, version = t.rpartition("-v")
        if family not in newest or int(version) > newest[family][0]:
            newest[family] = (int(version), t)
    return [t for _, t in newest.values()]


# An expert episode on newton costs 20-40 s (Warp's CPU kernels, one thread, ~600 kernel launches per
# step, each mostly Python overhead): every version on mujoco, on newton the newest of each task that
# handles an object (an older version differs in rewards and arm options, both covered on mujoco; Reach's
# arm motion is a part of every other expert's; the 500-episode newton rates of every version, Reach's
# too, are in BENCHMARKS.md).
EXPERT_CASES = [(t, "mujoco") for t in EXPERT_TASKS] + [
    pytest.param(t, *BACKENDS[1].values, marks=BACKENDS[1].marks)
    for t in _latest(EXPERT_TASKS)
    if not t.startswith("Franka-Reach-")
]


@pytest.mark.parametrize(("task_id", "backend"), EXPERT_CASES)
def test_scripted_expert_succeeds(task_id, backend):
    """One seeded episode of 12 envs (the 1,000-episode rates are in BENCHMARKS.md)."""
    result = evaluate_expert(task_id, num_envs=12, num_episodes=12, backend=backend, seed=1)
    assert result.success_rate >= 10 / 12, f"{task_id} expert on {backend}: {result}"


def test_every_franka_task_has_an_expert():
    for t in TASKS:
        if t.startswith("Franka-"):
            assert t in EXPERT_TASKS, f"{t} has no expert()"


# ---- shared pieces ---------------------------------------------------------------------------
def test_site_jacobian_and_gravity_match_mujoco():
    m, _ = load_scene("franka_cube.xml")
    fk = ForwardKinematics(m, torch.device("cpu"), dtype=torch.float64)
    site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "grip")
    joints = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"joint{i}") for i in range(1, 8)]
    jac_fn, grav_fn = SiteJacobian(fk, site), JointGravity(fk, joints)
    rng = np.random.default_rng(0)
    qpos = np.tile(m.key_qpos[0], (6, 1))
    for j in range(9):
        qpos[:, j] = rng.uniform(*m.jnt_range[j], size=6)
    poses = fk.body_poses(torch.as_tensor(qpos), fk.ancestors(jac_fn.bodies + grav_fn.bodies))
    pos, jac = jac_fn(poses)
    grav = grav_fn(poses)
    d = mujoco.MjData(m)
    jp, jr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
    for i in range(6):
        d.qpos[:], d.qvel[:] = qpos[i], 0.0
        mujoco.mj_forward(m, d)
        mujoco.mj_jacSite(m, d, jp, jr, site)
        np.testing.assert_allclose(pos[i].numpy(), d.site_xpos[site], atol=1e-9)
        np.testing.assert_allclose(jac[i, :3].numpy(), jp[:, jac_fn.dofs], atol=1e-9)
        np.testing.assert_allclose(jac[i, 3:].numpy(), jr[:, jac_fn.dofs], atol=1e-9)
        np.testing.assert_allclose(grav[i].numpy(), d.qfrc_bias[:7], atol=1e-8)


def test_in_grip_frame_matches_mujoco():
    """``in_grip_frame`` (envs last, no batched product) is ``R_hand^T (p - p_grip)`` with MuJoCo's pose
    of the hand and the grip site, for the cube after a few steps of random actions."""
    env = worldloop.make("Franka-Lift-v1", num_envs=8, seed=0)
    env.reset()
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        env.step(torch.rand(8, env.action_dim, generator=gen) * 2 - 1)
    cube = env.body_pos_w("cube")
    got = env.task.arm.in_grip_frame(cube)
    m = env.mj_model
    d = mujoco.MjData(m)
    hand, grip = m.body("hand").id, m.site("grip").id
    for i in range(8):
        d.qpos[:] = env.qpos[i].double().numpy()
        mujoco.mj_kinematics(m, d)
        want = d.xmat[hand].reshape(3, 3).T @ (d.xpos[m.body("cube").id] - d.site_xpos[grip])
        np.testing.assert_allclose(got[i].numpy(), want, atol=2e-6)


def test_envs_last_cholesky_solves_like_lapack():
    """The IK's 6x6 solve over all envs at once gives what LAPACK gives, per env, for SPD systems with
    condition numbers from 1 to ~1e4 (the damped IK's are below ~1e3)."""
    g = torch.Generator().manual_seed(0)
    n = 64
    q, _ = torch.linalg.qr(torch.randn(n, 6, 6, generator=g, dtype=torch.float64))
    eig = torch.logspace(0, 4, 6, dtype=torch.float64) * torch.rand(n, 1, generator=g, dtype=torch.float64).add(0.5)
    a = q @ torch.diag_embed(eig) @ q.transpose(1, 2)  # (N, 6, 6) symmetric positive definite
    b = torch.randn(n, 6, generator=g, dtype=torch.float64)
    low = _cholesky(a.permute(1, 2, 0))
    x = _cholesky_solve(low, b.T).T
    np.testing.assert_allclose(x.numpy(), torch.linalg.solve(a, b).numpy(), rtol=1e-8, atol=1e-10)
    bk = torch.randn(n, 6, 3, generator=g, dtype=torch.float64)  # three right-hand sides at once
    xk = _cholesky_solve(low, bk.permute(1, 2, 0)).permute(2, 0, 1)
    np.testing.assert_allclose(xk.numpy(), torch.linalg.solve(a, bk).numpy(), rtol=1e-8, atol=1e-10)


def test_ik_step_is_the_weighted_damped_least_squares_step():
    """The arm's IK step (envs last, rank-one weight, Cholesky) equals the textbook formula with explicit
    matrices: dq = n + J+ (d - J n), refined once on the residual, J+ = W^-1 J^T (J W^-1 J^T + l^2 I)^-1."""
    env = worldloop.make("Franka-Lift-v1", num_envs=16, seed=0)
    env.reset()
    arm = env.task.arm
    g = torch.Generator().manual_seed(1)
    q = (arm.q_home + 0.3 * torch.randn(16, 7, generator=g)).clamp(arm.q_lo, arm.q_hi)
    qpos = env.qpos.clone()
    qpos[:, arm.q_ids] = q
    jac = arm.jac.soa(arm.fk.body_poses(qpos, arm.jac.bodies))[1]
    delta = 0.02 * torch.randn(16, 6, generator=g)
    got = arm._dls(jac, delta, q).double()
    j, d = jac.permute(2, 0, 1).double(), delta.double().unsqueeze(-1)
    m = torch.tensor([1.0, 0, -1.0, 0, 0, 0, 0], dtype=torch.float64) / math.sqrt(2.0)
    w_inv = torch.eye(7, dtype=torch.float64) - (1.0 - 0.1) * torch.outer(m, m)  # counter_rotation_weight 0.1
    jt = w_inv @ j.transpose(1, 2)
    pinv = jt @ torch.linalg.inv(j @ jt + 0.05**2 * torch.eye(6, dtype=torch.float64))  # damping 0.05
    null = (arm.null_gain * (arm.q_home - q)).double().unsqueeze(-1)
    dq = null + pinv @ (d - j @ null)
    want = (dq + pinv @ (d - j @ dq)).squeeze(-1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-6)
    assert want.abs().max() > 1e-3  # a step that moves the arm, not a trivial zero


@pytest.mark.parametrize("action_space", ["joint_pos", "joint_delta", "ee_delta"])
def test_expert_works_in_every_action_space(action_space):
    """The experts are written once, in grip poses; every action space carries them out."""
    result = evaluate_expert("Franka-Lift-v0", num_envs=12, num_episodes=12, seed=1, action_space=action_space)
    assert result.success_rate >= 10 / 12, f"Lift expert with {action_space}: {result}"


def test_zero_joint_action_holds_home_without_sagging():
    env = worldloop.make(
        "Franka-Lift-v0", num_envs=2, seed=0, joint_noise=0.0, action_space="joint_pos", start_grip_pos=None
    )
    env.reset()
    home = env.task.arm.grip_pos_w().clone()
    for _ in range(50):
        env.step(torch.zeros(2, 8))
    assert (env.task.arm.grip_pos_w() - home).norm(dim=-1).max() < 2e-3


def test_ee_delta_moves_the_grip_by_the_commanded_displacement():
    env = worldloop.make("Franka-Lift-v0", num_envs=2, seed=0, action_space="ee_delta", start_grip_pos=None)
    assert env.action_dim == 7
    env.reset()
    start = env.task.arm.grip_pos_w().clone()
    quat = env.task.arm.grip_quat_w().clone()
    act = torch.zeros(2, 7)
    act[:, 0], act[:, 2], act[:, 6] = 0.5, -0.5, 1.0  # +x, -z from home, gripper open
    for _ in range(10):
        env.step(act)
    for _ in range(25):  # let the servos settle
        env.step(torch.cat((torch.zeros(2, 6), torch.ones(2, 1)), -1))
    moved = env.task.arm.grip_pos_w() - start
    step = 5 * env.cfg.ee_pos_scale  # 10 steps of half the scale
    torch.testing.assert_close(moved, torch.tensor([[step, 0.0, -step]] * 2), atol=5e-3, rtol=0)
    assert rewards.orientation_error(env.task.arm.grip_quat_w(), quat).max() < 0.02


def test_zero_joint_delta_holds_the_start_pose():
    env = worldloop.make("Franka-Lift-v0", num_envs=2, seed=0, joint_noise=0.0, action_space="joint_delta")
    env.reset()
    start = env.task.arm.grip_pos_w().clone()
    torch.testing.assert_close(start, torch.tensor([[0.4, 0.0, 0.15]] * 2), atol=3e-3, rtol=0)
    for _ in range(50):
        env.step(torch.zeros(2, 8))
    assert (env.task.arm.grip_pos_w() - start).norm(dim=-1).max() < 2e-3
    act = torch.zeros(2, 8)
    act[:, 0] = 1.0  # joint 1 target +0.05 rad per step, velocity-limited to 2.175 rad/s x 0.02 s
    env.step(act)
    torch.testing.assert_close(env.task.arm.q_cmd[:, 0] - env.task.arm.start[0], torch.full((2,), 2.175 * 0.02))


def test_ee_pos_moves_and_turns_the_hand_pointing_down():
    env = worldloop.make("Franka-Lift-v0", num_envs=2, seed=0, joint_noise=0.0)
    assert env.cfg.action_space == "ee_pos" and env.action_dim == 5
    env.reset()
    arm = env.task.arm
    start, yaw0 = arm.grip_pos_w().clone(), arm.grip_yaw().clone()
    act = torch.zeros(2, 5)
    act[:, 1], act[:, 2], act[:, 3], act[:, 4] = 0.5, 0.5, 0.3, 1.0  # +8 mm y, +8 mm z, +0.03 rad yaw per step
    for _ in range(10):
        env.step(act)
    for _ in range(25):  # let the servos settle
        env.step(torch.cat((torch.zeros(2, 4), torch.ones(2, 1)), -1))
    torch.testing.assert_close(arm.grip_pos_w() - start, torch.tensor([[0.0, 0.08, 0.08]] * 2), atol=5e-3, rtol=0)
    torch.testing.assert_close(arm.grip_yaw() - yaw0, torch.full((2,), 0.3), atol=0.03, rtol=0)
    down = rewards.orientation_error(arm.grip_quat_w(), down_quat(arm.grip_yaw()))
    assert down.max() < 0.02, f"hand tilted by {down.max():.3f} rad"


def test_start_pose_out_of_reach_is_refused():
    with pytest.raises(ValueError, match="start_grip_pos"):
        worldloop.make("Franka-Lift-v0", num_envs=2, start_grip_pos=(1.5, 0.0, 0.1))


def test_closed_gripper_has_no_gripper_value_and_keeps_the_peg():
    assert worldloop.make("Franka-Peg-Insert-v0", num_envs=2).action_dim == 4  # ee_pos: xyz + yaw, no gripper
    env = worldloop.make("Franka-Peg-Insert-v0", num_envs=2, seed=0, action_space="joint_pos")
    assert env.cfg.gripper == "closed" and env.action_dim == 7  # joint_pos without the gripper value
    env.reset()
    for _ in range(25):  # all +1: with a gripper value this would open the hand
        env.step(torch.full((2, 7), 0.05))
    assert env.task.arm.close_cmd.all()
    assert env.task.arm.finger_opening().max() < 0.02  # still closed on the 12.5 mm peg radius
    lift = worldloop.make("Franka-Lift-v0", num_envs=2, seed=0, gripper="closed")
    assert lift.action_dim == 4 and lift.task.expert().shape == (2, 4)
    with pytest.raises(ValueError, match="gripper"):
        worldloop.make("Franka-Lift-v0", num_envs=2, gripper="ajar")  # policy, closed or open


def test_push_goals_lie_ahead_of_the_cube():
    env = worldloop.make("Franka-Push-v0", num_envs=256, seed=3)
    env.reset()
    to_goal = env.task.goal_pos_w[:, :2] - env.task._cube()[0][:, :2]
    heading = torch.atan2(to_goal[:, 1], to_goal[:, 0])
    # Clamping a goal into the table area shortens it but never turns it past 60 degrees.
    assert heading.abs().max() <= math.pi / 3 + 1e-4, heading.abs().max()
    assert heading.min() < -0.8 and heading.max() > 0.8  # the whole cone is used
    assert to_goal.norm(dim=-1).min() > env.cfg.success_threshold  # no episode starts solved
    with pytest.raises(ValueError, match="goal_heading"):
        worldloop.make("Franka-Push-v0", num_envs=2, goal_heading=(1.0, -1.0))


@pytest.mark.parametrize("task_id", ["Franka-Stack-v1", "Franka-Stack-v2"])
def test_stack_reward_pays_most_for_letting_go_on_b(task_id):
    """The expert, and the expert kept in an earlier phase: holding A on B or above B must earn less
    per episode than setting it down and letting go."""

    def episode(hold: tuple[int, int] | None) -> tuple[float, float]:
        env = worldloop.make(task_id, num_envs=12, seed=3)
        env.reset()
        ret = torch.zeros(env.num_envs)
        for _ in range(env.max_episode_length - 1):  # the last step would start the next episode
            if hold is not None:  # from phase hold[0] on, stay in phase hold[1]
                env.task.fsm.goto(env.task.fsm.phase >= hold[0], hold[1])
            _, rew, _, _, info = env.step(env.task.expert())
            ret += rew
        env.close()
        return float(ret.mean()), float(info["success"].float().mean())

    full, stack_hold, carry_hold = episode(None), episode((6, 5)), episode((5, 4))
    assert full[1] >= 10 / 12 and stack_hold[1] == carry_hold[1] == 0.0, (full, stack_hold, carry_hold)
    assert full[0] > 1.2 * stack_hold[0] > 1.2 * carry_hold[0], (full, stack_hold, carry_hold)


def test_lift_v1_pays_a_centred_grasp_not_pressing_the_cube_down():
    """Franka-Lift-v1: the expert closed on the cube and kept there earns the ``grasp`` term; the same grasp
    with the hand then pushed down (fingertips on the table, the cube low in the pads) earns under half of
    it, where v0 paid most of it (0.72 against 1.0); ``lift`` pays nothing while the cube is on the table."""

    def hold(task_id: str, press: bool) -> dict[str, float]:
        env = worldloop.make(task_id, num_envs=12, seed=3, randomization={})
        env.reset()
        fsm, sums = env.task.fsm, {"grasp": 0.0, "lift": 0.0, "grip_z": 0.0}
        for t in range(150):
            fsm.goto(fsm.phase >= 3, 2)  # closed on the cube, never carried off
            act = env.task.expert()
            if press and t >= 100:
                act[:, 2] = torch.where(fsm.phase == 2, -1.0, act[:, 2])  # full "down", fingers closed
            env.step(act)
            if t >= 120:
                terms = env.task.rewards()
                sums["grasp"] += float(terms["grasp"].mean()) / 30
                sums["lift"] += float(terms["lift"].mean()) / 30
                sums["grip_z"] += float(env.task.arm.grip_pos_w()[:, 2].mean()) / 30
        env.close()
        return sums

    centred, pressed = hold("Franka-Lift-v1", False), hold("Franka-Lift-v1", True)
    assert pressed["grip_z"] < centred["grip_z"] - 0.008, (centred, pressed)  # the press moved the hand down
    assert centred["grasp"] > 0.6 and pressed["grasp"] < 0.5 * centred["grasp"], (centred, pressed)
    assert centred["lift"] < 0.1 and pressed["lift"] < 0.1, (centred, pressed)  # nothing paid on the table
    v0_centred, v0_pressed = hold("Franka-Lift-v0", False), hold("Franka-Lift-v0", True)
    assert v0_pressed["grasp"] > 0.6 * v0_centred["grasp"] > 0.5, (v0_centred, v0_pressed)


def test_box_lowest_z_is_the_lowest_corner():
    """``rewards.box_lowest_z`` against the lowest of the box's 8 corners, rotated one by one."""
    torch.manual_seed(0)
    n, half = 64, (0.025, 0.04, 0.01)
    q = torch.nn.functional.normalize(torch.randn(n, 4), dim=-1)
    pos = torch.randn(n, 3) * 0.1
    signs = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float32)
    corners = torch.stack([pos + quat_rotate(q, (s * torch.tensor(half)).expand(n, 3)) for s in signs], dim=1)
    torch.testing.assert_close(rewards.box_lowest_z(pos, q, half), corners[..., 2].amin(dim=1), atol=1e-6, rtol=0)


def test_reward_terms_are_batched_and_bounded():
    torch.manual_seed(0)
    n = 5
    a, b = torch.rand(n, 3), torch.rand(n, 3)
    q = torch.nn.functional.normalize(torch.randn(n, 4), dim=-1)
    for v in (
        rewards.distance_tanh(a, b, 0.1),
        rewards.distance_exp(a, b, 0.1),
        rewards.ramp(a[:, 0], 0.2, 0.8),
        rewards.lift_height(a[:, 2], 0.1, 0.3),
        rewards.axis_alignment(torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)),
        rewards.grasped(a * 0.01, torch.full((n,), 0.025), torch.ones(n, dtype=torch.bool), 0.025),
    ):
        assert v.shape == (n,) and (v >= 0).all() and (v <= 1 + 1e-6).all()
    err = rewards.orientation_error(q, q)
    assert err.shape == (n,) and err.max() < 1e-3
    assert torch.allclose(rewards.orientation_error(q, -q), torch.zeros(n), atol=1e-3)  # q and -q agree


def test_drawer_v1_pays_for_backing_off_once_the_drawer_is_open():
    """Franka-Open-Drawer-v1: the expert pulls the drawer open (>= 20 cm); holding the handle then earns no
    ``clear``, letting go and moving the arm back to ``home`` (1 s of zero ``joint_pos`` actions, gripper open)
    earns it in full and leaves the drawer open. v1 pays 3 per step for it on top of v0's reward; holding the
    bar closed still pays more (``grasp`` and ``open_grasped``: a held drawer is not pushed back), so what
    ``clear`` outbids is a hand left at the handle without a grasp, the hook PPO's policies learn."""

    def ending(task_id: str, back_off: bool) -> tuple[float, float, float]:
        env = worldloop.make(task_id, num_envs=8, seed=3, randomization={})
        env.reset()
        for _ in range(150):
            env.step(env.task.expert())
        assert bool(env.task.success().all())
        act = torch.zeros(env.num_envs, env.action_dim)
        act[:, -1] = 1.0  # open
        ret = torch.zeros(env.num_envs)
        for _ in range(50):
            _, rew, *_ = env.step(act if back_off else env.task.expert())
            ret += rew
        clear = float(env.task.rewards()["clear"].mean())
        opened = float(env.task.success().float().mean())
        env.close()
        return clear, opened, float(ret.mean()) / 50

    stay, back = ending("Franka-Open-Drawer-v1", False), ending("Franka-Open-Drawer-v1", True)
    assert stay[0] == 0.0 and back[0] > 0.9 and back[1] == 1.0 == stay[1], (stay, back)
    v0_stay, v0_back = ending("Franka-Open-Drawer-v0", False), ending("Franka-Open-Drawer-v0", True)
    # v1 pays for backing off, v0 does not (clear rises from 0 as the hand moves off: 2.3 of 3 per step here)
    assert back[2] - v0_back[2] > 1.5, (back, v0_back)
    assert abs(stay[2] - v0_stay[2]) < 0.05 * stay[2], (stay, v0_stay)  # holding the bar earns the same


def test_drawer_v2_pays_reach_from_the_start():
    """Franka-Open-Drawer-v2's ``reach`` is ``1 - tanh(d / 0.3 m)`` of the measured grip-handle distance d,
    v1's ``1 - tanh(d / 0.1 m)``: at the reset poses (d ~ 42 cm) v2 pays over 100x more."""
    reach = {}
    for task_id, std in (("Franka-Open-Drawer-v1", 0.1), ("Franka-Open-Drawer-v2", 0.3)):
        env = worldloop.make(task_id, num_envs=8, seed=3, randomization={})
        env.reset()
        d = (env.task.arm.grip_pos_w() - env.site_pos_w("handle")).norm(dim=-1)
        assert bool(((d > 0.3) & (d < 0.6)).all()), d
        reach[task_id] = env.task.rewards()["reach"]
        torch.testing.assert_close(reach[task_id], 1 - torch.tanh(d / std))
        env.close()
    assert float(reach["Franka-Open-Drawer-v2"].mean()) > 100 * float(reach["Franka-Open-Drawer-v1"].mean())
