"""gymnasium's own entry points over worldloop tasks: make, make_vec (both modes), seeds, info masks,
rendering, close, and the single-env view under gymnasium's env checker."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ClosedEnvironmentError
from gymnasium.utils.env_checker import check_env

import worldloop  # noqa: F401 - registers worldloop/<task id>

REACH = "worldloop/Franka-Reach-v0"


@pytest.mark.parametrize("mode", ["sync", "vector_entry_point"])
def test_make_vec_steps_in_both_modes(mode):
    env = gym.make_vec(REACH, num_envs=4, vectorization_mode=mode)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 34) and obs.dtype == np.float32
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (4, 34) and reward.shape == terminated.shape == truncated.shape == (4,)
    assert np.isfinite(obs).all() and np.isfinite(reward).all()
    assert info["success"].shape == (4,) and info["_success"].all()
    env.close()


def test_seed_list_info_masks_render_and_close():
    env = gym.make_vec(REACH, num_envs=4, render_mode="rgb_array")
    by_list, _ = env.reset(seed=[0, 1, 2, 3])  # the seeds gymnasium derives from seed=0
    by_int, info = env.reset(seed=0)
    np.testing.assert_array_equal(by_list, by_int)
    assert info["_critic"].tolist() == [True] * 4
    with pytest.raises(ValueError, match=r"seed=\[5, 5, 5, 5\].*int seed"):
        env.reset(seed=[5, 5, 5, 5])
    _, _, terminated, truncated, info = env.step(env.action_space.sample())
    for key in [k for k in info if not k.startswith("_")]:
        mask = info[f"_{key}"]
        assert mask.shape == (4,) and mask.dtype == bool, key
    assert info["_final_obs"].tolist() == (terminated | truncated).tolist()
    frames = env.render()
    assert len(frames) == 4 and frames[0].shape == (360, 480, 3) and frames[0].dtype == np.uint8
    assert frames[0].std() > 5  # something is drawn
    assert not env.closed
    env.close()
    assert env.closed
    with pytest.raises(ClosedEnvironmentError):
        env.step(env.action_space.sample())
    with pytest.raises(ValueError, match="render_mode"):
        gym.make_vec(REACH, num_envs=2, render_mode="human")


def test_single_env_view_passes_the_env_checker():
    env = gym.make(REACH, render_mode="rgb_array")
    assert not isinstance(env.unwrapped, gym.vector.VectorEnv)
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=1)
    assert obs.shape == env.observation_space.shape == (34,)
    assert env.render().shape == (360, 480, 3)
    env.close()
    with pytest.raises(ClosedEnvironmentError):
        env.unwrapped.step(env.action_space.sample())


def test_single_env_ends_episodes_without_resetting_itself():
    # 5 steps an episode, every reset exactly at rest (no noise): a reset shows as an all-zero observation.
    cfg = {"episode_length_s": 0.1, "reset_noise": 0.0, "randomization": {}}
    env = gym.make("worldloop/Cartpole-v0", **cfg).unwrapped
    obs, _ = env.reset(seed=0)
    assert not obs.any()
    steps, truncated = 0, False
    while not truncated:
        obs, _, terminated, truncated, _ = env.step(np.ones(1, np.float32))
        steps += 1
        assert not terminated
    assert steps == 5
    assert np.abs(obs).min() > 0  # the episode's last observation (cart pushed), not the next one's first
    obs, _ = env.reset()
    assert not obs.any()
    env.close()


def test_stable_baselines3_ppo_trains_cartpole_on_the_single_env_view():
    """The README's path for SB3: its PPO takes the single-env view as it is (a small budget)."""
    sb3 = pytest.importorskip("stable_baselines3")

    env = gym.make("worldloop/Cartpole-v0")
    model = sb3.PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action) and np.isfinite(env.step(action)[1])
    env.close()
