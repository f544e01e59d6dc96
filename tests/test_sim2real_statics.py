"""Object masses from the torques of static holds (sim2real/statics.py, HoldProbe) and their use in identify()."""

from __future__ import annotations

import pytest

from worldloop.sim2real.logs import LogError, read_logs
from worldloop.sim2real.reality import FRANKA_PARAMS, HIDDEN_CHANGES, collect_reality
from worldloop.sim2real.statics import held_mass
from worldloop.sim2real.sysid import SysIdCfg, identify
from worldloop.tasks import make

LIFT = "Franka-Lift-v0"


@pytest.fixture(scope="module")
def lift_env():
    return make(LIFT, num_envs=1, randomization={})


@pytest.fixture(scope="module")
def holds(tmp_path_factory):
    """Payload-probe logs of the default hidden reality (cube x1.6, friction x0.6, kp x0.8, one step of
    latency, sensor noise on joints and torques)."""
    out = tmp_path_factory.mktemp("reality") / "lift_hold"
    return out, collect_reality(LIFT, out, episodes=8, seed=1, policy="hold")


def test_a_held_cube_is_weighed_from_the_torques_of_static_holds(holds, lift_env):
    path, truth = holds
    est = held_mass(read_logs(path, lift_env), lift_env, "cube")
    # Measured: 1.589 (seed 1), 1.558 (seed 0), 1.554 (seed 2) against 1.6.
    assert abs(est.factor / truth["changes"]["object_mass"] - 1) < 0.1, est
    assert 0 < est.factor_std < 0.1
    assert est.frames > 100 and est.episodes >= 4
    assert est.residual_rms < 0.5  # [N m]: the static model explains the torques


def test_the_nominal_cube_weighs_its_nominal_mass(tmp_path, lift_env):
    path = tmp_path / "nominal_hold"
    collect_reality(LIFT, path, episodes=4, seed=2, policy="hold", changes={"object_mass": 1.0})
    est = held_mass(read_logs(path, lift_env), lift_env, "cube")
    assert abs(est.factor - 1) < 0.05, est  # measured 0.986 (seed 1, 8 episodes)


def test_logs_without_a_static_hold_are_refused_naming_the_tests(tmp_path, lift_env):
    path = tmp_path / "expert"
    collect_reality(LIFT, path, episodes=2, seed=1, policy="expert")
    # The expert's own hold keeps chasing its goal, and with a step of latency it rings: no static frame.
    with pytest.raises(LogError, match="torques steady"):
        held_mass(read_logs(path, lift_env), lift_env, "cube")


def test_identify_takes_the_mass_from_static_holds(holds):
    path, truth = holds
    logs = {LIFT: read_logs(path, make(LIFT, num_envs=1))}
    fit = identify(logs, {"object_mass": FRANKA_PARAMS["object_mass"]}, SysIdCfg(popsize=4, generations=2))
    assert abs(fit.values["object_mass"] / HIDDEN_CHANGES["object_mass"] - 1) < 0.1, fit.values
    assert fit.static["object_mass"]["frames"] > 100
    assert fit.std["object_mass"] > 0
    assert fit.history == []  # nothing left for the replay fit


def test_a_mass_no_log_holds_still_is_left_at_nominal_and_reported(tmp_path):
    """Kinematic logs of pushes do not show the cube's weight: the fit says so instead of drifting."""
    path = tmp_path / "flick"
    collect_reality("Franka-Push-v0", path, episodes=2, seed=1, policy="flick")
    logs = {"Franka-Push-v0": read_logs(path, make("Franka-Push-v0", num_envs=1))}
    fit = identify(logs, {"object_mass": FRANKA_PARAMS["object_mass"]}, SysIdCfg(popsize=4, generations=2))
    assert fit.values["object_mass"] == 1.0
    assert "static hold" in fit.unfitted["object_mass"]
    assert not fit.identified("object_mass")
    assert "object_mass" not in fit.preset() and "object_mass" not in fit.to_json()["std"]


def test_a_fit_of_unknown_uncertainty_gives_its_search_range_not_nan():
    """A preset written from a fit must be a usable randomization (finite ranges, strict JSON)."""
    import json
    import math

    from worldloop.sim2real.sysid import SysIdResult

    params = {k: FRANKA_PARAMS[k] for k in ("object_mass", "object_friction", "arm_kp", "latency")}
    fit = SysIdResult(
        values={"object_mass": 1.5, "object_friction": 0.6, "arm_kp": float("nan"), "latency": 1},
        std={"object_mass": float("nan"), "object_friction": 0.01, "arm_kp": float("nan"), "latency": 0.0},
        loss_nominal=1.0, loss_fit=0.1, latency_losses={}, history=[], evaluations=0, seconds=0.0, params=params,
    )  # fmt: skip
    preset = fit.preset()
    assert preset["object_mass"].range == FRANKA_PARAMS["object_mass"].range  # std unknown: the whole range
    assert preset["object_friction"].range == (0.57, 0.63)  # +- 3 std
    assert "arm_kp" not in preset and preset["latency"].range == (1, 1)
    assert all(math.isfinite(x) for t in preset.values() for x in t.range)
    json.dumps({k: list(t.range) for k, t in preset.items()}, allow_nan=False)
