"""Sim-to-real measurements on real tiny runs: ranking metrics, robustness sweeps (pinning and physical
effect), cross-simulator transfer, ranking fidelity, refusals and plots.

Two Cartpole runs of six 32-env iterations (``model_0.pt`` ... ``model_5.pt``) are trained once: one
with the task's randomization preset (``pole_mass``, ``cart_mass``, ``motor_gain``, step-mode
``obs_noise``), one without any term.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import worldloop
from worldloop.envs.loop import evaluate, run_episodes, summarize
from worldloop.envs.randomization import RandTerm
from worldloop.sim2real import (
    NoRandomizationError,
    TooFewCheckpointsError,
    mmrv,
    pearson,
    plot_rank,
    plot_robustness,
    plot_transfer,
    rank_fidelity,
    robustness,
    transfer,
)
from worldloop.sim2real.robustness import build_sweep, sweep_values

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    from worldloop.policies.train import TrainCfg, train

    root = tmp_path_factory.mktemp("runs")
    cfg = TrainCfg.from_task(
        "Cartpole-v0", num_envs=32, max_iterations=6, save_interval=1, eval_episodes=0, log_root=str(root)
    )
    cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, num_steps_per_env=8))
    out = {"rand": Path(train(dataclasses.replace(cfg, run_name="rand"))["run_dir"])}
    norand = dataclasses.replace(cfg, run_name="norand", env=dataclasses.replace(cfg.env, randomization={}))
    out["norand"] = Path(train(norand)["run_dir"])
    return out


def is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 5000 and path.read_bytes()[:8] == PNG


# ---------------------------------------------------------------------- ranking metrics
def test_pearson_on_hand_computed_examples():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # cov 0.5, var 1, var 1
    assert math.isnan(pearson([0.4, 0.4, 0.4], [0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="same length"):
        pearson([1, 2, 3], [1, 2])


def test_mmrv_on_hand_computed_examples():
    # The same order on another scale: no violation.
    assert mmrv([0.1, 0.4, 0.8], [0.0, 0.5, 0.6]) == 0.0
    # Sim swaps the top two (reference 0.5 and 0.9): both get a violation of 0.4; mean 0.8 / 3.
    assert mmrv([0.1, 0.5, 0.9], [0.1, 0.9, 0.5]) == pytest.approx(0.8 / 3)
    # A fully reversed order: worst violations 1.0, 0.5, 1.0.
    assert mmrv([0.0, 0.5, 1.0], [1.0, 0.5, 0.0]) == pytest.approx(2.5 / 3)
    # SIMPLER's strict comparison: a sim tie against a reference order is a violation of the one above.
    assert mmrv([0.2, 0.6], [0.3, 0.3]) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="same length"):
        mmrv([0.1, 0.2], [0.1])


unit = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(2, 10).flatmap(lambda n: st.tuples(st.lists(unit, min_size=n, max_size=n),
                                                      st.lists(unit, min_size=n, max_size=n))))  # fmt: skip
def test_rank_metric_properties(pair):
    ref, sim = pair
    assert mmrv(ref, ref) == 0.0
    m = mmrv(ref, sim)
    assert 0.0 <= m <= max(ref) - min(ref) + 1e-12
    assert mmrv(ref, [2 * s for s in sim]) == m  # only the order of sim counts
    r = pearson(ref, sim)
    assert math.isnan(r) or -1.0 <= r <= 1.0
    if max(ref) > min(ref):
        assert pearson(ref, ref) == pytest.approx(1.0)


# ---------------------------------------------------------------------- evaluation
def test_evaluate_reports_a_return_interval_and_episodes_per_env():
    env = worldloop.make("Cartpole-v0", num_envs=8, seed=1, randomization={})
    zero = lambda obs: torch.zeros(8, 1)  # noqa: E731
    eps = run_episodes(env, zero, 16)
    assert torch.bincount(eps.env_ids, minlength=8).tolist() == [2] * 8  # two rounds, one episode each
    r = summarize(eps)
    lo, hi = r.return_ci95
    assert lo < r.mean_return < hi and r.episodes == 16
    assert hi - lo == pytest.approx(2 * 1.96 * float(eps.returns.std()) / 4, rel=1e-9)  # 1.96 s / sqrt(n)
    r = evaluate(env, zero, 12)
    assert r.episodes == 12 and r.return_ci95[0] < r.mean_return < r.return_ci95[1]
    env.close()


def test_sweep_values_stop_at_physical_bounds():
    v = sweep_values((0.5, 1.5), points=5, widen=1.0, lower=0.0)  # friction >= 0
    assert v[0] == 0.0 and v[-1] == pytest.approx(2.5) and len(v) == 5
    v = sweep_values((0.7, 1.3), points=5, widen=2.0, lower=0.0, strict=True)  # mass > 0
    assert v[0] == pytest.approx(0.07) and v[-1] == pytest.approx(2.5)
    v = sweep_values((0.5, 2.0), points=3, widen=1.0, log=True)  # log-uniform: by the ratio 4
    assert v == pytest.approx([0.125, 1.0, 8.0])
    assert sweep_values((1, 3), points=9, widen=1.0, lower=0.0, integer=True) == [0, 1, 2, 3, 4, 5]


# ---------------------------------------------------------------------- robustness
def test_robustness_refuses_a_run_without_randomization(runs):
    with pytest.raises(NoRandomizationError, match="trained without randomization") as e:
        robustness(runs["norand"])
    assert str(runs["norand"]) in str(e.value) and "terms=" in str(e.value) and "terms_from=" in str(e.value)
    assert isinstance(e.value, ValueError)
    with pytest.raises(NoRandomizationError, match=r"terms_from=.*norand.*trained without randomization"):
        robustness(runs["rand"], terms_from=runs["norand"])
    with pytest.raises(KeyError, match="pole_mass"):
        robustness(runs["rand"], names=["pole_mas"])


def test_sweep_pins_each_point_and_a_heavier_pole_slows_the_cart(runs):
    sweep = build_sweep(runs["rand"], "pole_mass", points=3, widen=1.0, envs_per_point=4)
    env, rz = sweep.env, sweep.env.randomizer
    assert sweep.values == pytest.approx([0.512, 1.0, 1.953125])  # (0.8, 1.25) log-widened by 1.5625
    assert sweep.training_range == (0.8, 1.25) and sweep.in_run_config and sweep.quantity == "value"
    pole = float(env.mj_model.body("pole").mass[0])
    expected = pole * torch.tensor(sweep.values).repeat_interleave(4)[:, None]
    torch.testing.assert_close(rz.physical("pole_mass").double().cpu(), expected.double(), rtol=1e-6, atol=0)
    # The other terms sit at their nominal values.
    m = env.mj_model
    torch.testing.assert_close(rz.physical("cart_mass").cpu(), torch.full((12, 1), float(m.body("cart").mass[0])))
    kp = float(m.actuator("cart_force").gainprm[0])
    torch.testing.assert_close(rz.physical("motor_gain").cpu(), torch.full((12, 1), kp))
    assert not rz.values()["obs_noise"].any()
    env.reset()  # a reset redraws unpinned reset terms: the sweep's stay
    torch.testing.assert_close(rz.physical("pole_mass").double().cpu(), expected.double(), rtol=1e-6, atol=0)
    # Physics: the same push from rest accelerates the cart less the heavier the pole (deterministic:
    # 0.8% between the extreme points, body_mass keeps the pole's inertia).
    env.set_state(torch.zeros(12, env.nq), torch.zeros(12, env.nv))
    for _ in range(3):
        env.step(torch.ones(12, 1))
    assert (env.episode_length_buf == 3).all()  # no env fell and reset
    xd = env.qvel[:, env.joint_qvel_ids(["slider"])[0]].view(3, 4)
    assert torch.allclose(xd, xd[:, :1].expand(3, 4))  # identical within a point
    v = xd[:, 0]
    assert v[0] > v[1] > v[2] and float(v[0] - v[2]) > 0.005 * float(v[0])
    sweep.close()


def test_step_noise_is_swept_by_half_width_and_reaches_the_observations(runs):
    sweep = build_sweep(runs["rand"], "obs_noise", points=3, widen=1.0, envs_per_point=16)
    env, rz = sweep.env, sweep.env.randomizer
    assert sweep.quantity == "half_width" and sweep.training_range == (0.0, 0.01)
    assert sweep.values == pytest.approx([0.0, 0.015, 0.03])  # up to 3x the trained half-width
    obs = env.reset()[0]
    sweep.policy(obs)  # draws the noise of the next step
    draw = rz.values()["obs_noise"].view(3, 16, -1)
    assert not draw[0].any()
    for i in (1, 2):
        assert float(draw[i].abs().max()) <= sweep.values[i] + 1e-7
    assert 1.5 < float(draw[2].std() / draw[1].std()) < 2.7  # std a / 2: ratio 2 up to sampling
    env.step(torch.zeros(48, 1))
    seen = env.get_observations()["policy"] - env.task.observe()["policy"]
    torch.testing.assert_close(seen, draw.view(48, -1))
    sweep.close()


def test_latency_sweep_goes_beyond_the_trained_delay(runs):
    latency = {"latency": RandTerm(kind="action_latency", range=(0, 1))}
    sweep = build_sweep(runs["norand"], "latency", terms=latency, points=3, widen=1.0, envs_per_point=2)
    env = sweep.env
    assert sweep.values == [0, 1, 2] and sweep.training_range == (0.0, 1.0) and not sweep.in_run_config
    assert env.randomizer.values()["latency"][:, 0].tolist() == [0, 0, 1, 1, 2, 2]
    env.reset()
    ctrl = []
    for _ in range(3):
        env.step(torch.ones(6, 1))
        ctrl.append(env.ctrl[::2, 0].tolist())  # one env per point
    assert ctrl == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]  # the first action arrives 0, 1 and 2 steps late
    sweep.close()


def test_robustness_of_a_run_without_randomization_over_another_runs_terms(runs, tmp_path):
    with_dr = robustness(runs["rand"], names=["pole_mass", "obs_noise"], points=3, episodes_per_point=8)
    without = robustness(
        runs["norand"], terms_from=runs["rand"], names=["pole_mass", "obs_noise"], points=3, episodes_per_point=8
    )
    json.dumps(without, allow_nan=False)
    assert without["task"] == "Cartpole-v0" and without["episodes_per_point"] == 8 and without["others"] == "nominal"
    for name, rng in (("pole_mass", [0.8, 1.25]), ("obs_noise", [0.0, 0.01])):
        a, b = with_dr["terms"][name], without["terms"][name]
        assert a["in_run_config"] and not b["in_run_config"]
        assert a["values"] == b["values"] and a["training_range"] == b["training_range"] == rng
        assert b["episodes"] == [8, 8, 8]
        for rate, (lo, hi) in zip(b["success_rate"], b["success_ci95"], strict=True):
            assert lo <= rate <= hi
    pole = without["terms"]["pole_mass"]
    assert pole["unit"] == "x nominal" and pole["physical_unit"] == "kg" and pole["spacing"] == "log"
    assert without["terms"]["obs_noise"]["spacing"] == "linear"
    assert [p[0] for p in pole["physical"]] == pytest.approx([0.1 * v for v in pole["values"]], rel=1e-6)
    assert without["terms"]["obs_noise"]["physical"] is None
    assert pole["in_range"]["episodes"] == 8 and pole["out_of_range"]["episodes"] == 16
    # An explicit term: hinge damping (0 in the scene) set absolutely; the sweep stops at damping 0.
    damp = robustness(
        runs["norand"],
        terms={"hinge_damping": RandTerm(kind="dof_damping", targets="hinge", range=(0.0, 0.02), op="abs")},
        points=3,
        episodes_per_point=4,
    )["terms"]["hinge_damping"]
    assert damp["values"] == pytest.approx([0.0, 0.02, 0.04]) and damp["unit"] == "N m s/rad"
    png = plot_robustness([with_dr, without], tmp_path / "robustness.png", labels=["with DR", "without DR"])
    assert is_png(png)


# ---------------------------------------------------------------------- transfer
def test_transfer_on_the_training_backend(runs, tmp_path):
    result = transfer(runs["rand"], backends=["mujoco"], episodes=16, num_envs=8)
    json.dumps(result, allow_nan=False)
    assert result["training_backend"] == "mujoco" and list(result["backends"]) == ["mujoco"]
    m = result["backends"]["mujoco"]
    assert m["episodes"] == 16 and m["num_envs"] == 8 and m["success_drop"] == 0.0 and m["return_drop"] == 0.0
    assert m["return_ci95"][0] < m["mean_return"] < m["return_ci95"][1]
    assert is_png(plot_transfer(result, tmp_path / "transfer.png"))
    with pytest.raises(ValueError, match="unknown backend.*allowed: mujoco, newton"):
        transfer(runs["rand"], backends=["bullet"])


@pytest.mark.newton
@pytest.mark.slow
def test_transfer_to_newton(runs, tmp_path):
    pytest.importorskip("newton")
    pytest.importorskip("warp")
    result = transfer(runs["rand"], backends=["newton"], episodes={"mujoco": 16, "newton": 8}, num_envs=8)
    assert list(result["backends"]) == ["mujoco", "newton"]  # the training backend first
    n = result["backends"]["newton"]
    assert n["episodes"] == 8 and n["success_drop_ci95"][0] <= n["success_drop"] <= n["success_drop_ci95"][1]
    assert is_png(plot_transfer(result, tmp_path / "transfer.png"))


def test_isaaclab_transfer_needs_a_counterpart_and_names_the_setup_when_absent(runs, tmp_path, monkeypatch):
    """Cartpole-v0 maps onto Isaac-Cartpole; without an Isaac Lab environment the transfer lists isaaclab as
    not installed with the command that creates it; Franka-Reach-v0 has no counterpart and says why."""
    import sys

    from worldloop.envs.isaaclab.env import SETUP
    from worldloop.policies.train import TrainCfg, train
    from worldloop.sim2real.isaaclab_transfer import counterpart, isaaclab_here
    from worldloop.sim2real.report import markdown

    if isaaclab_here():
        pytest.skip("Isaac Lab imports in this process: it is always available here")
    assert counterpart("Cartpole-v0").task == "isaaclab:Isaac-Cartpole-v0" and counterpart("Franka-Lift-v0") is None
    monkeypatch.setenv("WORLDLOOP_ISAACLAB_ENV", str(tmp_path / "no_env"))
    with pytest.raises(ValueError, match="no Isaac Lab environment.*" + SETUP.split(" && ")[0]):
        transfer(runs["rand"], backends=["mujoco", "isaaclab"], episodes=8, num_envs=8)
    # The default backends of a machine with the mujoco backend only: isaaclab is named, not evaluated.
    monkeypatch.setattr(sys.modules["worldloop.sim2real.transfer"], "installed_backends", lambda: ["mujoco"])
    result = transfer(runs["rand"], episodes=8, num_envs=8)
    assert list(result["backends"]) == ["mujoco"] and result["not_installed"] == ["isaaclab"]
    assert SETUP in result["setup"]["isaaclab"] and "WORLDLOOP_ISAACLAB_ENV" in result["setup"]["isaaclab"]
    head = {"task": "Cartpole-v0", "run": "r", "checkpoint": "best", "seed": 0, "worldloop_version": "0",
            "created": "now", "machine": {"cpus": 2}, "seconds": 1.0, "plots": {"transfer": "t.png"}}  # fmt: skip
    assert f"Not installed: isaaclab; in the worldloop checkout: {SETUP}" in markdown({**head, "transfer": result})
    # A task without a counterpart: refused when asked for, said why in the default list.
    cfg = TrainCfg.from_task("Franka-Reach-v0", num_envs=4, max_iterations=1, eval_episodes=0,
                             log_root=str(tmp_path / "reach"))  # fmt: skip
    reach = train(dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, num_steps_per_env=2)))["run_dir"]
    with pytest.raises(ValueError, match="backend isaaclab: Isaac-Reach-Franka's layouts do not map"):
        transfer(reach, backends=["isaaclab"], episodes=4)
    result = transfer(reach, episodes=4, num_envs=4)
    assert "orientation" in result["not_evaluated"]["isaaclab"] and result["not_installed"] == []


@pytest.mark.isaaclab
def test_transfer_to_isaaclab_runs_in_the_isaaclab_environment(runs, tmp_path):
    """The real cross-environment transfer: this process evaluates on mujoco, the Isaac Lab environment
    (Python 3.12, a subprocess) evaluates the same checkpoint on Isaac-Cartpole."""
    from worldloop.sim2real.isaaclab_transfer import isaaclab_available

    if not isaaclab_available():
        pytest.skip("no Isaac Lab environment (.venv-isaaclab or $WORLDLOOP_ISAACLAB_ENV; README, 'Isaac Lab backend')")
    result = transfer(runs["rand"], backends=["mujoco", "isaaclab"], episodes={"mujoco": 16, "isaaclab": 8}, num_envs=8)
    json.dumps(result, allow_nan=False)
    assert list(result["backends"]) == ["mujoco", "isaaclab"]
    m, i = result["backends"]["mujoco"], result["backends"]["isaaclab"]
    assert i["task"] == "isaaclab:Isaac-Cartpole-v0" and i["episodes"] == 8 and i["num_envs"] == 8
    # Isaac Lab's episodes: 300 steps (5 s at 60 Hz) unless the cart leaves +-3 m first.
    assert 0 < i["mean_length"] <= 300 and 0 < m["mean_length"] <= 500
    assert i["return_drop"] is None and i["success_drop"] == pytest.approx(m["success_rate"] - i["success_rate"])
    assert -10.0 < i["mean_return"] <= 5.0 + 1e-6  # Isaac Lab's reward: at most 1 per second for 5 s
    png = plot_transfer(result, tmp_path / "transfer.png")
    assert is_png(png)


# ---------------------------------------------------------------------- ranking fidelity
def test_rank_fidelity_over_six_checkpoints(runs, tmp_path):
    result = rank_fidelity(runs["rand"], reference={"pins": {"pole_mass": 2.0}}, episodes=8)
    json.dumps(result, allow_nan=False)
    rows = result["checkpoints"]
    assert [r["checkpoint"] for r in rows] == [f"model_{i}.pt" for i in range(6)]
    assert [r["iteration"] for r in rows] == list(range(6))
    sim = [r["sim"]["success_rate"] for r in rows]
    ref = [r["reference"]["success_rate"] for r in rows]
    assert result["mmrv"] == mmrv(ref, sim)
    r = pearson(ref, sim)
    assert (result["pearson_r"] is None) == math.isnan(r) and (math.isnan(r) or result["pearson_r"] == r)
    assert result["reference"]["pins"] == {"pole_mass": 2.0} and result["sim"]["pins"] == {}
    # The same initial states, a pole twice as heavy: the episodes differ.
    assert any(r["sim"]["mean_return"] != r["reference"]["mean_return"] for r in rows)
    assert is_png(plot_rank(result, tmp_path / "rank.png"))


def test_rank_fidelity_refuses_few_checkpoints_and_unknown_pins(runs):
    with pytest.raises(TooFewCheckpointsError, match=r"at least 6 checkpoints, got 2.*--save-interval"):
        rank_fidelity(runs["rand"], reference="mujoco", checkpoints=["model_0.pt", "model_5.pt"])
    with pytest.raises(ValueError, match=r"reference pins term\(s\) \['cube_mass'\].*terms: \['cart_mass'"):
        rank_fidelity(runs["rand"], reference={"pins": {"cube_mass": 2.0}}, episodes=4)
    with pytest.raises(ValueError, match=r"no field\(s\) \['pin'\]"):
        rank_fidelity(runs["rand"], reference={"pin": {"pole_mass": 2.0}}, episodes=4)


def test_rank_plot_takes_a_success_rate_of_one(tmp_path):
    """A Wilson bound equal to the rate may round to the wrong side of it; the plot must still draw."""
    from worldloop.envs.loop import wilson_interval

    def stats(s: int) -> dict:
        return {"episodes": 100, "successes": s, "success_rate": s / 100, "success_ci95": list(wilson_interval(s, 100))}

    rows = [{"checkpoint": f"model_{i}.pt", "iteration": i, "sim": stats(s), "reference": stats(s)}
            for i, s in enumerate((0, 23, 97, 100, 100, 99))]  # fmt: skip
    result = {"task": "T", "checkpoints": rows, "pearson_r": 1.0, "mmrv": 0.0, "episodes": 100,
              "sim": {"label": "mujoco"}, "reference": {"label": "newton"}}  # fmt: skip
    assert is_png(plot_rank(result, tmp_path / "rank.png"))
