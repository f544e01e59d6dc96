"""Property tests (hypothesis): any task config or run setting is either refused before physics runs,
with a message naming the field, or runs with finite observations and rewards."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import worldloop
from worldloop.envs.randomization import RandTerm
from worldloop.policies.train import TrainCfg, check_train_cfg

ANY = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**40), 2**40),
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.lists(st.floats(-2, 2), max_size=3),
)
FIELDS = {  # Cartpole's fields, with values that are plausible (small) or anything at all
    "decimation": st.one_of(st.integers(-3, 8), ANY),
    "episode_length_s": st.one_of(st.floats(-1, 1), ANY),
    "reset_noise": st.one_of(st.floats(-0.5, 0.5), ANY),
    "max_angle": st.one_of(st.floats(-1, 3), ANY),
    "max_cart_pos": st.one_of(st.floats(-1, 3), ANY),
    "action_clip": st.one_of(st.floats(-1, 5), ANY),
    "weights": st.one_of(st.dictionaries(st.sampled_from(["alive", "upright", "nope"]), st.floats(-1e3, 1e3)), ANY),
}
FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.fixed_dictionaries({}, optional=FIELDS))
def test_task_config_is_refused_by_name_or_runs_finite(overrides):
    try:
        env = worldloop.make("Cartpole-v0", num_envs=2, backend="mujoco", seed=0, **overrides)
    except (TypeError, ValueError) as e:
        assert any(name in str(e) for name in overrides), (overrides, str(e))
        return
    try:
        obs, _ = env.reset()
        for _ in range(min(env.max_episode_length, 5) + 1):
            obs, reward, _, _, _ = env.step(torch.rand(2, env.action_dim) * 2 - 1)
            assert torch.isfinite(obs["policy"]).all() and torch.isfinite(reward).all(), overrides
    finally:
        env.close()


RUN_FIELDS = {
    name: st.one_of(st.integers(-5, 5), ANY)
    for name in ("num_envs", "max_iterations", "save_interval", "eval_episodes")
}


@FAST
@given(st.fixed_dictionaries({}, optional=RUN_FIELDS))
def test_run_settings_are_refused_by_option_name_before_any_env(overrides):
    cfg = TrainCfg.from_task("Cartpole-v0", **overrides)
    bad = [
        k
        for k, v in overrides.items()
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "eval_episodes" else 1)
    ]
    if not bad:
        assert check_train_cfg(cfg) is cfg
        return
    with pytest.raises(ValueError) as e:
        check_train_cfg(cfg)
    assert any("--" + k.replace("_", "-") in str(e.value) for k in bad)


TERM = st.builds(
    RandTerm,
    kind=st.sampled_from(["body_mass", "actuator_stiffness", "dof_damping", "gravity", "obs_noise", "action_noise"]),
    targets=st.sampled_from([None, "pole", "cart", "cart_force", "hinge", "nope"]),
    range=st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True))
    | st.tuples(st.floats(-3, 3), st.floats(-3, 3)),
    dist=st.sampled_from(["uniform", "log_uniform", "gaussian"]),
)


@FAST
@given(TERM)
def test_randomization_term_is_refused_by_name_or_runs_finite(term):
    try:
        env = worldloop.make("Cartpole-v0", num_envs=2, backend="mujoco", seed=0, randomization={"bad": term})
    except (TypeError, ValueError) as e:
        assert "'bad'" in str(e) or "bad." in str(e), (term, str(e))
        return
    try:
        env.reset()
        for _ in range(5):
            obs, reward, _, _, _ = env.step(torch.rand(2, env.action_dim) * 2 - 1)
            assert torch.isfinite(obs["policy"]).all() and torch.isfinite(reward).all(), term
    finally:
        env.close()
