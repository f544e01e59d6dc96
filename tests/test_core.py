"""Fast tests of the batched env core on the mujoco backend."""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np
import pytest
import torch

import worldloop
from worldloop.envs.batched_env import load_scene
from worldloop.envs.kinematics import ForwardKinematics, cross_soa, norm


def test_forward_kinematics_matches_mujoco():
    m, _ = load_scene("franka_cube.xml")
    rng = np.random.default_rng(0)
    n = 16
    qpos = np.tile(m.qpos0, (n, 1))
    for j in range(m.njnt):
        adr = m.jnt_qposadr[j]
        if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
            qpos[:, adr : adr + 3] = rng.uniform(-1, 1, (n, 3))
            quat = rng.normal(size=(n, 4))
            qpos[:, adr + 3 : adr + 7] = quat / np.linalg.norm(quat, axis=1, keepdims=True)
        elif m.jnt_limited[j]:
            qpos[:, adr] = rng.uniform(*m.jnt_range[j], size=n)
    fk = ForwardKinematics(m, torch.device("cpu"), dtype=torch.float64)
    bodies = fk.ancestors(list(range(1, m.nbody)))
    poses = fk.body_poses(torch.as_tensor(qpos), bodies)
    d = mujoco.MjData(m)
    for i in range(n):
        d.qpos[:] = qpos[i]
        mujoco.mj_kinematics(m, d)
        for b in bodies:
            np.testing.assert_allclose(poses[b][0][i].numpy(), d.xpos[b], atol=1e-9)
            quat = poses[b][1][i].numpy()  # q and -q are the same rotation
            np.testing.assert_allclose(quat * np.sign(quat @ d.xquat[b]), d.xquat[b], atol=1e-9)
        for s in range(m.nsite):
            pos = fk.site_pos(poses, s)[i].numpy()
            np.testing.assert_allclose(pos, d.site_xpos[s], atol=1e-9)


def test_envs_last_norm_and_cross_match_torch():
    """The step path's norm and cross product give torch's values on the envs-last layout they are for:
    transposed ``(N, 3)`` views of ``(3, N)`` rows, and ``(J, 3, N)`` blocks crossed along dim 1."""
    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(3, 257, generator=gen)
    view = rows.T  # (N, 3), strided as Poses.pos and the sites' positions are
    assert not view.is_contiguous()
    torch.testing.assert_close(norm(view), torch.linalg.vector_norm(view, dim=-1))
    torch.testing.assert_close(norm(view, keepdim=True), torch.linalg.vector_norm(view, dim=-1, keepdim=True))
    torch.testing.assert_close(norm(rows, dim=0), torch.linalg.vector_norm(rows, dim=0))
    a, b = torch.randn(7, 3, 257, generator=gen), torch.randn(7, 3, 257, generator=gen)
    torch.testing.assert_close(cross_soa(a, b, dim=1), torch.linalg.cross(a, b, dim=1))
    torch.testing.assert_close(cross_soa(view, view.flip(0), dim=-1), torch.linalg.cross(view, view.flip(0), dim=-1))


def test_mujoco_backend_matches_plain_mjdata():
    """The rollout-based backend steps exactly like one MjData per env."""
    env = worldloop.make(
        "Franka-Reach-v0", num_envs=3, backend="mujoco", seed=3, action_space="joint_pos", randomization={}
    )
    env.reset()
    q0, v0 = env.qpos.double().clone(), env.qvel.double().clone()
    acts = [torch.rand(3, 7, generator=torch.Generator().manual_seed(t)) * 2 - 1 for t in range(10)]
    ctrls = []
    for a in acts:
        env.step(a)
        ctrls.append(env.ctrl.clone())  # the command depends on the measured state (velocity limits)
    m = env.mj_model
    for i in range(3):
        d = mujoco.MjData(m)
        d.qpos[:], d.qvel[:] = q0[i].numpy(), v0[i].numpy()
        for c in ctrls:
            d.ctrl[:] = c[i].double().numpy()
            mujoco.mj_step(m, d, env.cfg.decimation)
        # float32 state copies round the initial state: agreement to ~1e-5, not bitwise.
        np.testing.assert_allclose(env.qpos[i].numpy(), d.qpos, atol=1e-4)


def test_step_shapes_and_info():
    env = worldloop.make("Franka-Reach-v0", num_envs=5, seed=0)
    obs, _ = env.reset()
    assert obs["policy"].shape == (5, 34) and obs["critic"].shape == (5, 34)
    obs, rew, term, trunc, info = env.step(torch.zeros(5, 7))
    assert rew.shape == term.shape == trunc.shape == info["success"].shape == (5,)
    assert info["success"].dtype == torch.bool
    assert set(info["reward_terms"]) == set(env.cfg.weights)
    assert torch.isfinite(obs["policy"]).all() and torch.isfinite(rew).all()


def test_partial_autoreset_touches_only_finished_envs():
    a = worldloop.make("Franka-Reach-v0", num_envs=4, seed=7)
    b = worldloop.make("Franka-Reach-v0", num_envs=4, seed=7)
    a.reset()
    b.reset()
    b.episode_length_buf[1] = b.max_episode_length - 1  # env 1 of b times out on the next step
    act = torch.full((4, 7), 0.3)
    _, _, _, trunc_a, _ = a.step(act)
    _, _, _, trunc_b, info_b = b.step(act)
    assert not trunc_a.any()
    assert trunc_b.tolist() == [False, True, False, False]
    keep = [0, 2, 3]
    torch.testing.assert_close(a.qpos[keep], b.qpos[keep])
    torch.testing.assert_close(a.task.target_pos_w[keep], b.task.target_pos_w[keep])
    assert b.episode_length_buf[1] == 0 and b.actions[1].abs().sum() == 0
    # The returned obs of env 1 is its new episode; its finished episode ends in final_obs.
    torch.testing.assert_close(info_b["final_obs"]["policy"][1], a.get_observations()["policy"][1])


def test_seed_determinism():
    def run(seed):
        env = worldloop.make("Franka-Reach-v0", num_envs=4, seed=seed)
        env.reset()
        for t in range(5):
            env.step(torch.sin(torch.arange(28.0).reshape(4, 7) + t))
        return env.qpos.clone(), env.task.target_pos_w.clone()

    q1, t1 = run(11)
    q2, t2 = run(11)
    q3, t3 = run(12)
    torch.testing.assert_close(q1, q2, rtol=0, atol=0)
    torch.testing.assert_close(t1, t2, rtol=0, atol=0)
    assert not torch.equal(t1, t3)


def test_physics_divergence_resets_env_and_is_counted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its instability warning to MUJOCO_LOG.TXT here
    env = worldloop.make("Franka-Reach-v0", num_envs=3, seed=0)
    env.reset()
    qpos, qvel = env.qpos.clone(), env.qvel.clone()
    qvel[2] = float("nan")
    env.backend.set_state(torch.tensor([False, False, True]), qpos, qvel)
    obs, rew, term, trunc, _ = env.step(torch.zeros(3, 7))
    assert trunc.tolist() == [False, False, True]
    assert int(env.num_physics_resets) == 1
    assert torch.isfinite(obs["policy"]).all() and torch.isfinite(rew).all()
    assert env.pop_episode_stats()["physics_resets"] == 1


def test_episode_stats_report_finished_episodes():
    env = worldloop.make("Cartpole-v0", num_envs=8, seed=0)
    env.reset()
    for _ in range(env.max_episode_length):
        env.step(torch.ones(8, 1))  # full force one way: every episode terminates early
    stats = env.pop_episode_stats()
    assert stats["episodes"] >= 8
    assert 0 < stats["length"] < env.max_episode_length
    assert stats["success"] == 0.0
    assert stats["term/alive"] == pytest.approx(stats["length"])
    assert env.pop_episode_stats()["episodes"] == 0  # popped


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"task_id": "Franka-Rech-v0"}, KeyError, ["Franka-Rech-v0", "Did you mean 'Franka-Reach-v0'?"]),
        ({"task_id": "franka-reach-v0"}, KeyError, ["Did you mean 'Franka-Reach-v0'?"]),
        ({"task_id": "Cartpole-v0", "backend": "physx"}, ValueError, ["physx", "mujoco", "newton"]),
        ({"task_id": "Cartpole-v0", "num_envs": 0}, ValueError, ["num_envs"]),
        ({"task_id": "Cartpole-v0", "decimaton": 2}, TypeError, ["decimaton", "decimation"]),
        ({"task_id": "Cartpole-v0", "decimation": 0}, ValueError, ["decimation"]),
        ({"task_id": "Cartpole-v0", "scene": "nope.xml"}, FileNotFoundError, ["nope.xml"]),
        ({"task_id": "Cartpole-v0", "episode_length_s": "abc"}, TypeError, ["CartpoleCfg.episode_length_s", "'abc'"]),
        ({"task_id": "Cartpole-v0", "decimation": 2.5}, TypeError, ["CartpoleCfg.decimation", "int"]),
        ({"task_id": "Cartpole-v0", "episode_length_s": float("nan")}, ValueError, ["episode_length_s", "finite"]),
        ({"task_id": "Cartpole-v0", "weights": {"alive": "x"}}, TypeError, ["CartpoleCfg.weights"]),
        ({"task_id": "Cartpole-v0", "weights": {"alvie": 1.0}}, ValueError, ["'alvie'", "'alive'"]),
        ({"task_id": "Franka-Push-v0", "action_space": "joints"}, ValueError, ["action_space", "ee_pos"]),
    ],
)
def test_bad_construction_is_refused_with_a_clear_error(kwargs, exc, words):
    task_id = kwargs.pop("task_id")
    with pytest.raises(exc) as e:
        worldloop.make(task_id, **kwargs)
    for w in words:
        assert w in str(e.value)


def test_weights_given_change_those_terms_and_keep_the_others():
    default = worldloop.make("Cartpole-v0", num_envs=2).cfg.weights
    env = worldloop.make("Cartpole-v0", num_envs=2, weights={"alive": 3.0})
    assert env.cfg.weights == {**default, "alive": 3.0} and len(default) > 1
    env.reset()
    _, reward, _, _, info = env.step(torch.zeros(2, env.action_dim))
    expect = sum(env.cfg.weights[k] * v for k, v in info["reward_terms"].items())
    torch.testing.assert_close(reward, expect)
    # A complete config of the caller's with a weight for no term is refused at the first reward.
    cfg = dataclasses.replace(env.cfg, weights={**default, "alvie": 1.0})
    bad = worldloop.make("Cartpole-v0", num_envs=2, cfg=cfg)
    bad.reset()
    with pytest.raises(ValueError, match="'alvie'.*'alive'"):
        bad.step(torch.zeros(2, bad.action_dim))


def test_malformed_scene_is_refused_before_anything_runs(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body><geom type='box'/></body></worldbody>")  # unclosed
    with pytest.raises(ValueError, match="bad.xml"):
        worldloop.make("Cartpole-v0", scene=str(bad))


def test_bad_actions_are_refused():
    env = worldloop.make("Franka-Reach-v0", num_envs=2)
    env.reset()
    with pytest.raises(ValueError, match=r"shape.*\(2, 7\).*\(2, 6\)"):
        env.step(torch.zeros(2, 6))
    nan = torch.zeros(2, 7)
    nan[1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"NaN.*\[1\]"):
        env.step(nan)


def test_gymnasium_make_returns_vector_env():
    import gymnasium as gym

    env = gym.make("worldloop/Cartpole-v0", num_envs=4)
    assert isinstance(env, gym.vector.VectorEnv)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 4) and env.action_space.shape == (4, 1)
    obs, rew, term, trunc, info = env.step(env.action_space.sample())
    assert obs.shape == (4, 4) and rew.shape == (4,) and info["success"].shape == (4,)
    assert isinstance(gym.make_vec("worldloop/Franka-Reach-v0", num_envs=2), gym.vector.VectorEnv)
