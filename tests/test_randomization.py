"""Domain randomization: sampling, application from nominal values, physical effects, errors, and
agreement of the mujoco and newton backends on what each term does.

The physics tests run Franka-Reach-v0 on ``franka_cube.xml`` (the reach task's arm plus a free
5 cm cube on the table) with only the terms under test, pinned with ``randomizer.set`` so each env
gets a known value.
"""

from __future__ import annotations

import copy
import dataclasses

import mujoco
import numpy as np
import pytest
import torch

import worldloop
from worldloop.envs.randomization import CURRICULUM_STEP, CURRICULUM_WINDOW, RandTerm
from worldloop.scripts.rand_option import apply_rand_options, pop_rand_options
from worldloop.tasks.franka_reach import ReachCfg

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CUBE = dict(scene="franka_cube.xml", joint_noise=0.0, action_space="joint_pos", joint_action_scale=0.05)
"""Reach on the cube scene, every env starting at ``home``; actions are joint offsets from home
(0.05 rad per unit action)."""


def make(terms: dict, num_envs: int = 4, seed: int = 0, backend: str = "mujoco", device: str = "cpu", **kw):
    return worldloop.make("Franka-Reach-v0", num_envs=num_envs, seed=seed, backend=backend, device=device,
                          randomization=terms, **{**CUBE, **kw})  # fmt: skip


def cube_xy(env) -> torch.Tensor:
    adr = int(env.mj_model.joint("cube_joint").qposadr[0])
    return env.qpos[:, adr : adr + 2]


SAMPLED = {
    "cube_mass": RandTerm(kind="body_mass", targets="cube", range=(0.5, 2.0), dist="log_uniform"),
    "cube_friction": RandTerm(kind="geom_friction", targets="cube", range=(0.5, 1.5), components=(0, 1)),
    "damping": RandTerm(kind="dof_damping", targets="joint[1-7]", range=(0.5, 2.0), dist="gaussian"),
    "kp": RandTerm(kind="actuator_stiffness", targets="actuator[1-7]", range=(0.8, 1.2), mode="startup"),
    "gravity": RandTerm(kind="gravity", range=(-0.5, 0.5)),
    "pose": RandTerm(kind="initial_pose", targets="cube", range=(-0.02, 0.02)),
    "obs_bias": RandTerm(kind="obs_bias", range=(-0.01, 0.01)),
    "latency": RandTerm(kind="action_latency", range=(0, 3)),
}


# ---------------------------------------------------------------------- sampling
@pytest.mark.parametrize("device", DEVICES)
def test_draws_stay_in_range_differ_across_envs_and_reproduce(device):
    env = make(SAMPLED, num_envs=16, seed=3, device=device)
    env.reset()
    for _ in range(3):
        env.step(torch.zeros(16, 7, device=device))
    values = env.randomizer.values()
    assert set(values) == set(SAMPLED)
    for name, v in values.items():
        lo, hi = SAMPLED[name].range
        assert v.shape == (16, len(env.randomizer.columns(name))), name
        assert ((v >= lo) & (v <= hi)).all(), name
        assert (v.std(0) > 0).all(), f"{name}: every column must differ across envs"
    assert set(values["latency"].unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}

    again = make(SAMPLED, num_envs=16, seed=3, device=device)
    again.reset()
    for _ in range(3):
        again.step(torch.zeros(16, 7, device=device))
    other = make(SAMPLED, num_envs=16, seed=4, device=device)
    other.reset()
    for name, v in values.items():
        torch.testing.assert_close(again.randomizer.values()[name], v, rtol=0, atol=0)
        assert not torch.equal(other.randomizer.values()[name], v), name
    torch.testing.assert_close(again.qpos, env.qpos, rtol=0, atol=0)


def test_parameters_are_applied_from_nominal_values_without_drift():
    terms = {
        "mass_all": RandTerm(kind="body_mass", targets="link.*|hand|cube", range=(0.9, 1.1)),
        "mass_cube": RandTerm(kind="body_mass", targets="cube", range=(0.05, 0.1), op="add"),
        "kv": RandTerm(kind="actuator_damping", targets="actuator1", range=(10.0, 20.0), op="abs"),
    }
    env = make(terms, num_envs=4)
    nominal = env.mj_model.body_mass[env.mj_model.body("cube").id]
    for _ in range(5):  # each reset recomputes from nominal: scale, then add, in declaration order
        env.reset()
        v = env.randomizer.values()
        cube = v["mass_all"][:, -1] * nominal + v["mass_cube"][:, 0]
        torch.testing.assert_close(env.randomizer.physical("mass_cube")[:, 0], cube.float())
        torch.testing.assert_close(env.randomizer.physical("kv")[:, 0], v["kv"][:, 0])  # kv = -biasprm[2]
    bias = env.backend.get_model_params("actuator_biasprm")
    torch.testing.assert_close(bias[:, 0, 2], -env.randomizer.values()["kv"][:, 0])


def test_stiffness_moves_the_affine_bias_with_the_gain():
    """A position actuator's force is kp * (ctrl - q): biasprm[1] = -kp must follow gainprm[0]."""
    env = make({"kp": RandTerm(kind="actuator_stiffness", targets="actuator[1-7]", range=(0.5, 2.0))}, num_envs=3)
    gain, bias = env.backend.get_model_params("actuator_gainprm"), env.backend.get_model_params("actuator_biasprm")
    torch.testing.assert_close(bias[:, :7, 1], -gain[:, :7, 0])
    torch.testing.assert_close(gain[:, :7, 0], env.randomizer.values()["kp"] * 4500 * torch.tensor(
        [1, 1, 1, 1, 3500 / 4500, 3500 / 4500, 3500 / 4500]))  # fmt: skip


def test_reset_terms_touch_only_the_envs_being_reset():
    env = make(SAMPLED, num_envs=4)
    env.reset()
    before, mass_before = env.randomizer.values(), env.randomizer.physical("cube_mass")
    mask = torch.tensor([False, True, False, True])
    env.episode_length_buf[mask] = env.max_episode_length - 1  # envs 1 and 3 time out on this step
    _, _, _, truncated, _ = env.step(torch.zeros(4, 7))
    assert truncated.tolist() == mask.tolist()
    after = env.randomizer.values()
    for name, term in SAMPLED.items():
        torch.testing.assert_close(after[name][~mask], before[name][~mask], rtol=0, atol=0, msg=name)
        if term.mode is None:  # reset terms are redrawn for the envs reset
            assert (after[name][mask] != before[name][mask]).all(), name
        else:
            torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)
    mass = env.randomizer.physical("cube_mass")
    assert torch.equal(mass[~mask], mass_before[~mask]) and (mass[mask] != mass_before[mask]).all()


def test_set_pins_a_value_for_sweeps_and_release_resumes_sampling():
    env = make({"friction": RandTerm(kind="geom_friction", targets="cube", range=(0.5, 1.5), op="abs")})
    env.randomizer.set("friction", 0.3)
    for _ in range(3):
        env.reset()
        assert torch.equal(env.randomizer.physical("friction"), torch.full((4, 1), 0.3))
    friction = env.backend.get_model_params("geom_friction")[:, env.mj_model.geom("cube").id]
    torch.testing.assert_close(friction[:, 0], torch.full((4,), 0.3))
    env.randomizer.release("friction")
    env.reset()
    assert (env.randomizer.physical("friction") != 0.3).all()


# ---------------------------------------------------------------------- physical effects
def test_the_same_impulse_moves_a_heavier_cube_less():
    env = make({
        "cube_mass": RandTerm(kind="body_mass", targets="cube", range=(1.0, 1.0)),
        "shove": RandTerm(kind="impulse", targets="cube", components=(0,), range=(0.0, 0.0), mode="reset"),
    })  # fmt: skip
    env.randomizer.set("cube_mass", torch.tensor([[0.5], [1.0], [2.0], [4.0]]))
    env.randomizer.set("shove", 0.05)  # [N s] along +x at every reset
    env.reset()
    dof = int(env.mj_model.joint("cube_joint").dofadr[0])
    mass = 0.1 * torch.tensor([0.5, 1.0, 2.0, 4.0])
    torch.testing.assert_close(env.qvel[:, dof], 0.05 / mass)  # kick = impulse / mass
    x0 = cube_xy(env)[:, 0].clone()
    for _ in range(10):
        env.step(torch.zeros(4, 7))
    moved = cube_xy(env)[:, 0] - x0
    assert (moved > 0).all() and (moved.diff() < 0).all(), moved


def test_a_cube_with_higher_friction_slides_less():
    env = make({
        "friction": RandTerm(kind="geom_friction", targets="cube", range=(1.0, 1.0), op="abs"),
        "kick": RandTerm(kind="push", targets="cube", components=(0,), range=(0.0, 0.0), mode="reset"),
    })  # fmt: skip
    env.randomizer.set("friction", torch.tensor([[0.1], [0.2], [0.4], [0.8]]))  # a cube tips over above 1
    env.randomizer.set("kick", 0.6)  # [m/s]
    env.reset()
    x0 = cube_xy(env)[:, 0].clone()
    for _ in range(15):
        env.step(torch.zeros(4, 7))
    slid = cube_xy(env)[:, 0] - x0
    assert (slid > 0).all() and (slid.diff() < 0).all(), slid


def test_latency_delays_the_response_by_exactly_k_steps():
    """Envs 0-2 have 0, 1, 2 steps of latency and get a step action at t = 3; env 3 never moves.
    Until its delayed action arrives an env's state is bit-identical to env 3's, then it departs."""
    env = make({"latency": RandTerm(kind="action_latency", range=(0, 2))})
    env.randomizer.set("latency", torch.tensor([[0.0], [1.0], [2.0], [0.0]]))
    env.reset()
    seen = []
    to_ctrl = env.task.actions_to_ctrl
    env.task.actions_to_ctrl = lambda a: seen.append(a.clone()) or to_ctrl(a)
    act = torch.zeros(4, 7)
    departed = torch.full((3,), -1)
    for t in range(8):
        if t == 3:
            act[:3, 1] = 0.3
        env.step(act)
        differs = (env.qpos[:3] != env.qpos[3]).any(1)
        departed = torch.where((departed < 0) & differs, t, departed)
    assert departed.tolist() == [3, 4, 5]
    applied = torch.stack(seen)[:, :, 1]  # (t, env)
    for k in range(3):
        assert torch.equal(applied[:, k], torch.tensor([0.0] * (3 + k) + [0.3] * (5 - k)))


def test_obs_noise_perturbs_the_policy_group_only():
    env = make({"noise": RandTerm(kind="obs_noise", range=(-0.1, 0.1))})
    obs, _ = env.reset()
    assert not torch.equal(obs["policy"], obs["critic"])
    assert ((obs["policy"] - obs["critic"]).abs() <= 0.1).all()
    clean = env.task.observe()["critic"]
    torch.testing.assert_close(obs["critic"], clean)
    obs2, *_ = env.step(torch.zeros(4, 7))
    assert not torch.equal(obs2["policy"] - obs2["critic"], obs["policy"] - obs["critic"])  # resampled


def test_interval_pushes_follow_per_env_timers():
    env = make({"push": RandTerm(kind="push", targets="joint1", range=(1.0, 1.0), interval_s=(0.05, 0.25))},
               num_envs=8)  # fmt: skip
    env.reset()
    dof = int(env.mj_model.joint("joint1").dofadr[0])
    kicks, writes = torch.zeros(8, dtype=torch.long), []
    set_state = env.backend.set_state
    env.backend.set_state = lambda mask, q, v: writes.append((mask.clone(), v[:, dof] - env.qvel[:, dof])) or set_state(
        mask, q, v)  # fmt: skip
    for _ in range(25):  # 0.5 s, no episode ends
        env.step(torch.zeros(8, 7))
    for mask, dv in writes:
        torch.testing.assert_close(dv[mask], torch.ones(int(mask.sum())))  # a 1 rad/s kick where due
        kicks += mask.long()
    assert (kicks >= 2).all() and len(set(kicks.tolist())) > 1, kicks  # 2 to 10 kicks, per env


def test_backend_model_params_step_like_a_modified_mjmodel():
    """The mujoco backend's per-env parameters are bit-identical to MjData on a modified MjModel copy."""
    from worldloop.envs.backends.mujoco_backend import MujocoBackend
    from worldloop.envs.batched_env import load_scene

    m, _ = load_scene("franka_cube.xml")
    be = MujocoBackend(m, num_envs=2)
    everyone = torch.ones(2, dtype=torch.bool)
    be.set_state(everyone, torch.as_tensor(m.key_qpos[0]).expand(2, -1), torch.zeros(2, m.nv))
    params = {
        "body_mass": torch.as_tensor(m.body_mass).expand(2, -1) * torch.tensor([[0.7], [1.6]], dtype=torch.float64),
        "dof_damping": torch.as_tensor(m.dof_damping).expand(2, -1) * torch.tensor([[0.5], [3.0]], dtype=torch.float64),
        "opt.gravity": torch.tensor([[0.0, 0.5, -9.0], [1.0, 0.0, -10.5]], dtype=torch.float64),
    }
    for field, value in params.items():
        be.set_model_params(field, everyone, value)
    state0 = be._state.copy()
    ctrls = [torch.as_tensor(m.key_ctrl[0]).expand(2, -1) + 0.1 * t for t in range(5)]
    for c in ctrls:
        be.step(c, 4)
    for i in range(2):
        mi = copy.copy(m)
        mi.body_mass[:], mi.dof_damping[:], mi.opt.gravity[:] = (params[f][i].numpy() for f in params)
        d = mujoco.MjData(mi)
        mujoco.mj_setConst(mi, d)
        mujoco.mj_setState(mi, d, state0[i], mujoco.mjtState.mjSTATE_FULLPHYSICS)
        for c in ctrls:
            d.ctrl[:], d.qacc_warmstart[:] = c[i].numpy(), 0.0
            mujoco.mj_step(mi, d, 4)
        np.testing.assert_array_equal(be._state[i, 1 : 1 + m.nq], d.qpos)
    torch.testing.assert_close(be.get_model_params("body_mass"), params["body_mass"].float())
    be.close()


def test_centre_of_mass_offsets_work_on_a_simple_body():
    """MuJoCo compiles the cube as a "simple" body; a body_com term recompiles it as non-simple."""
    env = make({"com": RandTerm(kind="body_com", targets="cube", range=(-0.01, 0.01))})
    assert env.mj_model.body_simple[env.mj_model.body("cube").id] == 0
    env.reset()
    for _ in range(3):
        env.step(torch.zeros(4, 7))
    torch.testing.assert_close(env.randomizer.physical("com"), env.randomizer.values()["com"])
    assert torch.isfinite(env.qpos).all()


# ---------------------------------------------------------------------- curriculum, config, errors
def test_curriculum_widens_ranges_when_success_is_high_and_is_logged():
    env = make({"mass": RandTerm(kind="body_mass", targets="cube", range=(0.9, 1.1), max_range=(0.5, 3.0))})
    r = env.randomizer
    for _ in range(CURRICULUM_WINDOW):
        assert r.update_curriculum(0.2) == {"curriculum/mass": 0.0}
    for _ in range(CURRICULUM_WINDOW):
        log = r.update_curriculum(0.95)
    assert log == {"curriculum/mass": CURRICULUM_STEP}
    lo, hi = r.ranges()["mass"]
    assert lo == pytest.approx(0.9 - CURRICULUM_STEP * 0.4) and hi == pytest.approx(1.1 + CURRICULUM_STEP * 1.9)
    assert "curriculum/mass" in env.pop_episode_stats()


def test_randomizer_state_round_trips_generator_and_curriculum():
    """A resumed run (the runner saves ``state_dict`` in every checkpoint) draws what the first would."""
    terms = {"mass": RandTerm(kind="body_mass", targets="cube", range=(0.9, 1.1), max_range=(0.5, 3.0))}
    a, b = make(terms), make(terms)
    for _ in range(2 * CURRICULUM_WINDOW):
        a.randomizer.update_curriculum(0.95)
    a.randomizer.update_curriculum(0.5)
    state = a.randomizer.state_dict()
    b.randomizer.load_state_dict(state)
    assert b.randomizer.ranges() == a.randomizer.ranges() != make(terms).randomizer.ranges()
    assert b.randomizer._recent == a.randomizer._recent == [0.5]
    all_envs = torch.ones(a.num_envs, dtype=torch.bool)
    a.randomizer.reset(all_envs, a.qpos.clone(), a.qvel.clone())
    b.randomizer.reset(all_envs, b.qpos.clone(), b.qvel.clone())
    torch.testing.assert_close(b.randomizer.values()["mass"], a.randomizer.values()["mass"], rtol=0, atol=0)


def test_command_line_overrides_of_a_preset():
    terms = apply_rand_options(ReachCfg().randomization, [
        "actuator_kp.range=0.5,1.5", "actuator_kp.dist=log_uniform", "obs_noise=off",
        "cube_mass.kind=body_mass", "cube_mass.targets=cube", "cube_mass.range=0.5,2",
        "joint_damping.components=0", "link_mass.max_range=none",
    ])  # fmt: skip
    assert terms["actuator_kp"].range == (0.5, 1.5) and terms["actuator_kp"].dist == "log_uniform"
    assert "obs_noise" not in terms and terms["cube_mass"] == RandTerm(
        kind="body_mass", targets="cube", range=(0.5, 2.0)
    )
    assert terms["joint_damping"].components == (0,)
    with pytest.raises(ValueError, match="no field 'rnage'.*range"):
        apply_rand_options(terms, ["actuator_kp.rnage=1,2"])
    with pytest.raises(ValueError, match="new term 'x' needs"):
        apply_rand_options(terms, ["x.range=1,2"])
    for item in ("actuator_kp.range=1", "actuator_kp.range=1,2,3"):
        with pytest.raises(ValueError, match="range takes two numbers LOW,HIGH"):
            apply_rand_options(terms, [item])
    assert "actuator_kp" in apply_rand_options(ReachCfg().randomization, [])
    from worldloop.scripts.train import parse

    cfg = parse(["--task", "Franka-Reach-v0", "--rand", "obs_noise=off", "--rand", "actuator_kp.range=1,2"])
    assert "obs_noise" not in cfg.env.randomization and "actuator_kp" in cfg.env.randomization
    assert cfg.env.randomization["actuator_kp"].range == (1.0, 2.0)
    assert "obs_noise" in parse(["--task", "Franka-Reach-v0"]).env.randomization


def test_a_preset_file_adds_and_replaces_terms(tmp_path):
    """``--rand @FILE`` reads a preset as sim2real writes it (``fitted_randomization.json``); a bad file is
    refused naming it."""
    import json

    from worldloop.sim2real.reality import FRANKA_PARAMS
    from worldloop.tasks.franka_lift import LiftV1Cfg

    fitted = {
        "object_mass": {**dataclasses.asdict(FRANKA_PARAMS["object_mass"]), "range": [1.5, 1.7]},
        "latency": {**dataclasses.asdict(FRANKA_PARAMS["latency"]), "range": [1, 1]},
    }
    path = tmp_path / "fitted_randomization.json"
    path.write_text(json.dumps(fitted))
    terms = apply_rand_options(LiftV1Cfg().randomization, [f"@{path}", "obs_noise=off"])
    assert terms["object_mass"].range == (1.5, 1.7) and terms["latency"].range == (1, 1)
    assert "joint_damping" in terms and "obs_noise" not in terms
    env = worldloop.make("Franka-Lift-v1", num_envs=4, seed=0, randomization=terms)
    env.reset()
    assert torch.all((env.randomizer.values()["object_mass"] >= 1.5) & (env.randomizer.values()["object_mass"] <= 1.7))
    env.close()
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "field.json").write_text(json.dumps({"m": {"kind": "body_mass", "rnage": [1, 2]}}))
    cases = {"none.json": "no such preset file", "bad.json": "not valid JSON", "field.json": "term 'm'.*rnage"}
    for name, words in cases.items():
        with pytest.raises(ValueError, match=words):
            apply_rand_options(terms, [f"@{tmp_path / name}"])


def test_the_critic_can_see_the_physical_draws_and_the_policy_cannot():
    terms = {
        "cube_friction": RandTerm(kind="geom_friction", targets="cube", range=(0.5, 1.5), mode="reset"),
        "latency": RandTerm(kind="action_latency", range=(0, 2)),
        "obs_noise": RandTerm(kind="obs_noise", dist="gaussian", range=(-0.002, 0.002)),
    }
    plain = worldloop.make("Franka-Lift-v1", num_envs=8, seed=0, randomization=terms)
    named = ("latency", "cube_friction")
    env = worldloop.make("Franka-Lift-v1", num_envs=8, seed=0, randomization=terms, critic_randomization=named)
    (o_plain, _), (obs, _) = plain.reset(), env.reset()
    assert obs["policy"].shape == o_plain["policy"].shape and obs["critic"].shape[1] == o_plain["critic"].shape[1] + 2
    v = env.randomizer.values()  # the named terms, in the order named
    torch.testing.assert_close(obs["critic"][:, -2:], torch.cat((v["latency"], v["cube_friction"]), -1))
    env.randomizer.set("cube_friction", 0.6)  # pinned values are what the critic sees next
    obs, *_ = env.step(torch.zeros(8, env.action_dim))
    assert torch.all(obs["critic"][:, -1] == 0.6)
    # A term added for an evaluation (here the preset's cube mass, and a new one) leaves the critic's width.
    more = {**terms, "kp": RandTerm(kind="actuator_stiffness", targets="actuator[1-7]", range=(0.8, 1.2))}
    wide = worldloop.make("Franka-Lift-v1", num_envs=8, seed=0, randomization=more, critic_randomization=named)
    assert wide.reset()[0]["critic"].shape == obs["critic"].shape
    for bad in (("obs_noise",), ("nope",)):
        with pytest.raises(ValueError, match="not a physical randomization term.*cube_friction"):
            worldloop.make("Franka-Lift-v1", num_envs=2, seed=0, randomization=terms, critic_randomization=bad)
    for e in (plain, env, wide):
        e.close()


def test_rand_options_are_popped_from_the_command_line_in_order():
    argv = ["--task", "Franka-Lift-v0", "--rand", "obs_noise=off", "--num-envs", "8", "--rand=a.range=1,2", "--seed=3"]
    items, rest = pop_rand_options(argv)
    assert items == ["obs_noise=off", "a.range=1,2"]
    assert rest == ["--task", "Franka-Lift-v0", "--num-envs", "8", "--seed=3"]
    assert argv[2] == "--rand"  # the caller's list is not modified
    assert pop_rand_options([]) == ([], [])
    assert pop_rand_options(["--random", "x", "--rand-x=1"]) == ([], ["--random", "x", "--rand-x=1"])
    assert pop_rand_options(["--rand", "x=off", "--", "--rand", "y=off"]) == (["x=off"], ["--", "--rand", "y=off"])
    with pytest.raises(ValueError, match="--rand needs a value"):
        pop_rand_options(["--seed", "1", "--rand"])


def test_saved_configs_are_accepted_as_dicts():
    import dataclasses

    saved = dataclasses.asdict(ReachCfg(scene="franka_cube.xml"))["randomization"]  # as in config.json
    env = make({k: {**v, "range": list(v["range"])} for k, v in saved.items()}, num_envs=2)
    assert list(env.randomizer.terms) == list(saved)


@pytest.mark.parametrize(
    ("term", "words"),
    [
        (RandTerm(kind="body_mass", targets="cbe", range=(0.5, 2.0)), ["'bad'", "targets", "'cbe'", "cube"]),
        (RandTerm(kind="body_mass", targets="cube", range=(2.0, 0.5)), ["'bad'", "range", "empty"]),
        (RandTerm(kind="body_mas", targets="cube", range=(0.5, 2.0)), ["'bad'", "kind", "body_mass"]),
        (RandTerm(kind="body_mass", targets="cube", range=(0.5, 2.0), mode="step"), ["mode", "'step'", "reset"]),
        (RandTerm(kind="body_mass", targets="cube", range=(0.0, 2.0), dist="log_uniform"), ["range", "> 0"]),
        (RandTerm(kind="body_mass", range=(0.5, 2.0)), ["targets", "required", "bodies"]),
        (RandTerm(kind="body_mass", targets="cube", range=(0.5,)), ["'bad'", "range", "two numbers"]),
        (RandTerm(kind="gravity", targets="world", range=(0.5, 2.0)), ["targets", "no targets"]),
        (RandTerm(kind="geom_size", targets="table|floor", range=(0.5, 2.0)), ["targets", "floor"]),
        (RandTerm(kind="geom_friction", targets="cube", range=(0.5, 2.0), components=(3,)), ["components", "0..2"]),
        (RandTerm(kind="action_latency", range=(0.0, 1.5)), ["range", "whole"]),
        (RandTerm(kind="push", targets="cube|joint1", range=(0.0, 1.0)), ["targets", "mixes"]),
        (RandTerm(kind="obs_noise", targets="polcy", range=(0.0, 1.0)), ["targets", "policy"]),
    ],
)
def test_bad_terms_are_refused_naming_the_term_and_field(term, words):
    with pytest.raises(ValueError) as e:
        make({"bad": term}, num_envs=1)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


# ---------------------------------------------------------------------- newton agrees with mujoco
PARITY = {
    "cube_mass": RandTerm(kind="body_mass", targets="cube", range=(1.0, 1.0)),
    "friction": RandTerm(kind="geom_friction", targets="cube", range=(1.0, 1.0), op="abs"),
    "kp": RandTerm(kind="actuator_stiffness", targets="actuator[1-7]", range=(1.0, 1.0)),
    "damping": RandTerm(kind="dof_damping", targets="joint[1-7]", range=(1.0, 1.0)),
    "gravity": RandTerm(kind="gravity", components=(2,), range=(0.0, 0.0)),
    "shove": RandTerm(kind="impulse", targets="cube", components=(0,), range=(0.0, 0.0), mode="reset"),
    "latency": RandTerm(kind="action_latency", range=(0, 3)),
    "armature": RandTerm(kind="dof_armature", targets="joint[1-7]", range=(1.0, 1.0)),
    "frictionloss": RandTerm(kind="dof_frictionloss", targets="joint[1-7]", range=(0.0, 0.0), op="add"),
    "kv": RandTerm(kind="actuator_damping", targets="actuator[1-7]", range=(1.0, 1.0)),
    "com": RandTerm(kind="body_com", targets="cube", range=(0.0, 0.0)),
    "inertia": RandTerm(kind="body_inertia", targets="cube|link4", range=(1.0, 1.0)),
    "size": RandTerm(kind="geom_size", targets="cube", range=(1.0, 1.0)),
}
NOMINAL = {"cube_mass": 1.0, "friction": 0.5, "kp": 1.0, "damping": 1.0, "gravity": 0.0, "shove": 0.0, "latency": 0.0,
           "armature": 1.0, "frictionloss": 0.0, "kv": 1.0, "com": 0.0, "inertia": 1.0, "size": 1.0}  # fmt: skip
SCENARIOS = {
    # term: (per-env values, other terms' values, policy steps, metric), monotonic in the values
    "cube_mass": ([0.5, 1.0, 2.0, 4.0], dict(shove=0.05), 8, "cube_x"),
    "friction": ([0.1, 0.2, 0.4, 0.8], dict(shove=0.08), 8, "cube_x"),  # a cube tips over above 1
    "kp": ([0.25, 0.5, 1.0, 2.0], {}, 3, "joint2"),
    "damping": ([1.0, 10.0, 30.0, 100.0], {}, 3, "joint2"),
    "gravity": ([-6.0, -3.0, 0.0, 3.0], {}, 4, "cube_z"),
    "latency": ([0.0, 1.0, 2.0, 3.0], {}, 3, "joint2"),
}


@pytest.fixture(scope="module")
def parity_envs():
    pytest.importorskip("newton")
    pytest.importorskip("mujoco_warp")
    envs = {b: make(PARITY, num_envs=4, backend=b) for b in ("mujoco", "newton")}
    yield envs
    for env in envs.values():
        env.close()


def _scenario(env, term, values, extra, steps, metric):
    for name, value in {**NOMINAL, **extra}.items():
        env.randomizer.set(name, value)
    env.randomizer.set(term, torch.tensor(values)[:, None])
    env.reset()
    if term == "gravity":  # lift the cube 10 cm off the table: free fall under each env's gravity
        q = env.qpos.clone()
        q[:, int(env.mj_model.joint("cube_joint").qposadr[0]) + 2] += 0.1
        env.backend.set_state(torch.ones(4, dtype=torch.bool), q, torch.zeros_like(env.qvel))
    start = env.qpos.clone()
    act = torch.zeros(4, 7)
    act[:, 1] = 0.3  # joint2 target +0.3 rad from home
    for _ in range(steps):
        env.step(act)
    adr = int(env.mj_model.joint("cube_joint").qposadr[0])
    col = {"cube_x": adr, "cube_z": adr + 2, "joint2": 1}[metric]
    return (env.qpos[:, col] - start[:, col]).double()


@pytest.mark.newton
@pytest.mark.parametrize("term", list(SCENARIOS))
def test_newton_and_mujoco_agree_on_each_term(parity_envs, term):
    """Same direction and magnitude on a reference motion: the metric changes monotonically with
    the term's value on both backends, and the two backends' metrics agree within 5% of their spread."""
    values, extra, steps, metric = SCENARIOS[term]
    got = {b: _scenario(env, term, values, extra, steps, metric) for b, env in parity_envs.items()}
    mj, nt = got["mujoco"], got["newton"]
    order = torch.sign(mj[-1] - mj[0])
    assert order != 0 and ((mj.diff() * order) > 0).all(), (term, mj)
    assert ((nt.diff() * order) > 0).all(), (term, nt)
    spread = (mj.max() - mj.min()).abs()
    assert (mj - nt).abs().max() <= 0.05 * spread + 1e-5, (term, mj.tolist(), nt.tolist())


@pytest.mark.newton
def test_newton_publishes_every_model_term_like_mujoco(parity_envs):
    """Random values of every physical term reach Newton's MuJoCo Warp model as they reach MuJoCo C's."""
    g = torch.Generator().manual_seed(0)
    widths = parity_envs["mujoco"].randomizer.values()
    low_high = {"com": (-0.01, 0.01), "frictionloss": (0.0, 0.5), "gravity": (-1.0, 1.0)}
    values = {}
    for name, term in PARITY.items():
        if term.kind not in ("impulse", "action_latency"):
            lo, hi = low_high.get(name, (0.8, 1.2))
            values[name] = lo + (hi - lo) * torch.rand(4, widths[name].shape[1], generator=g)
    for env in parity_envs.values():
        for name, v in values.items():
            env.randomizer.set(name, v)
        env.step(torch.zeros(4, 7))  # Newton publishes its model arrays before this step
    mj, nt = parity_envs["mujoco"], parity_envs["newton"]
    for name in values:
        torch.testing.assert_close(nt.randomizer.physical(name), mj.randomizer.physical(name), msg=name)
    published = nt.backend.solver.mjw_model
    solids = [i for i in range(mj.mj_model.ngeom) if mj.mj_model.geom_type[i] != mujoco.mjtGeom.mjGEOM_PLANE]
    for field in ("body_mass", "body_ipos", "geom_friction", "geom_size", "dof_damping", "dof_armature",
                  "dof_frictionloss", "actuator_gainprm", "actuator_biasprm"):  # fmt: skip
        want = mj.backend.get_model_params(field)
        got = torch.as_tensor(getattr(published, field).numpy()).reshape(want.shape)
        if field == "geom_size":  # Newton sizes planes its own way; they are not randomized
            want, got = want[:, solids], got[:, solids]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=field)
    want = mj.backend.get_model_params("body_inertia")  # MuJoCo Warp re-diagonalizes: compare the moments
    got = torch.as_tensor(published.body_inertia.numpy())
    torch.testing.assert_close(got.sort(-1).values, want.sort(-1).values, rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(
        torch.as_tensor(published.opt.gravity.numpy()), mj.backend.get_model_params("opt.gravity")
    )
