"""The isaaclab backend: Isaac Lab 3.0 tasks (kit-less, Newton physics, CPU) behind worldloop's env API.

Marked ``isaaclab``: they need Isaac Lab 3.0 in a Python 3.12 environment and are skipped elsewhere.
Enable them with the README's set-up command ("Isaac Lab backend"), then::

    .venv-isaaclab/bin/python -m pytest -m isaaclab tests/test_isaaclab.py

Every env here runs on the stand-in USD assets ``worldloop isaaclab-assets`` writes, so nothing is
downloaded. One Isaac Lab env is built at a time (Isaac Lab keeps one simulation per process).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import pytest
import torch

import worldloop
from worldloop.envs.isaaclab.env import SETUP

HAVE_ISAACLAB = sys.version_info >= (3, 12) and importlib.util.find_spec("isaaclab_tasks") is not None
ENABLE = (
    f"needs Isaac Lab 3.0 in a Python 3.12 environment; create it with `{SETUP}` and run "
    "`.venv-isaaclab/bin/python -m pytest -m isaaclab tests/test_isaaclab.py` (README, 'Isaac Lab backend')"
)
isaaclab = pytest.mark.skipif(not HAVE_ISAACLAB, reason=ENABLE)


@pytest.mark.skipif(HAVE_ISAACLAB, reason="Isaac Lab is installed here")
def test_without_isaaclab_the_error_names_the_extra_and_the_setup():
    with pytest.raises(ImportError) as e:
        worldloop.make("isaaclab:Isaac-Cartpole-v0", num_envs=2, device="cpu")
    assert "worldloop[isaaclab]" in str(e.value) and "Python 3.12" in str(e.value) and SETUP in str(e.value)


@pytest.fixture(scope="module")
def asset_root(tmp_path_factory):
    from worldloop.scripts.isaaclab_assets import main

    root = tmp_path_factory.mktemp("isaaclab_assets")
    files = main(["--out", str(root)])
    assert len(files) == 3
    return str(root)


@isaaclab
@pytest.mark.isaaclab
def test_missing_asset_fails_within_seconds_naming_it_and_the_root(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError) as e:
        worldloop.make("isaaclab:Isaac-Cartpole-v0", num_envs=2, device="cpu", asset_root=str(tmp_path))
    assert time.perf_counter() - t0 < 20  # Isaac Lab's own download retries take ~55 s offline
    msg = str(e.value)
    assert "default_ground_plane.usda" in msg and "ISAACSIM_ASSET_ROOT" in msg and "isaaclab-assets" in msg


@isaaclab
@pytest.mark.isaaclab
def test_unknown_and_direct_workflow_ids_are_refused_clearly():
    with pytest.raises(KeyError, match="Isaac-Cartpole,"):
        worldloop.get_task("isaaclab:Isaac-Cartpol-v0")
    with pytest.raises(ValueError, match="direct workflow"):
        worldloop.get_task("isaaclab:Isaac-Cartpole-Direct-v0")
    assert worldloop.get_task("isaaclab:Isaac-Cartpole-v0").cfg_cls().scene == "Isaac-Cartpole"


@isaaclab
@pytest.mark.isaaclab
def test_unreachable_asset_host_fails_fast():
    from types import SimpleNamespace

    from worldloop.envs.isaaclab.env import resolve_assets

    # Port 9 (discard) on the loopback: the connection is refused at once.
    cfg = SimpleNamespace(scene=_Scene(usd_path="http://127.0.0.1:9/Isaac/robot.usd"))
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError, match=r"127\.0\.0\.1:9/Isaac/robot\.usd .*ISAACSIM_ASSET_ROOT"):
        resolve_assets(cfg)
    assert time.perf_counter() - t0 < 10


def _Scene(**kw):
    import dataclasses

    return dataclasses.make_dataclass("Spawn", [(k, str) for k in kw])(**kw)


@isaaclab
@pytest.mark.isaaclab
def test_cartpole_follows_the_batched_env_contract(asset_root):
    env = worldloop.make("isaaclab:Isaac-Cartpole-v0", num_envs=16, device="cpu", seed=1, asset_root=asset_root)
    try:
        assert env.backend_name == "isaaclab" and env.action_dim == 1 and env.max_episode_length == 300
        assert env.cfg.scene == "Isaac-Cartpole" and env.cfg.decimation == 2
        obs, _ = env.reset(seed=3)
        assert obs["policy"].shape == (16, 4) and obs["critic"].shape == (16, 4)
        g = torch.Generator().manual_seed(0)
        ended = 0
        for _ in range(320):  # past one full episode (300 steps): every env times out or terminates
            actions = torch.rand(16, 1, generator=g) * 2 - 1
            obs, reward, terminated, truncated, info = env.step(actions)
            assert reward.shape == (16,) and terminated.dtype == torch.bool and truncated.dtype == torch.bool
            assert info["success"].shape == (16,) and info["success"].dtype == torch.bool
            weighted = sum(env.cfg.weights[k] * v for k, v in info["reward_terms"].items())
            torch.testing.assert_close(weighted, reward, atol=1e-5, rtol=1e-5)
            assert torch.isfinite(obs["policy"]).all()
            done = terminated | truncated
            if done.any():
                # final_obs is the last state of the ended episode, obs the first of the next one.
                assert not torch.equal(info["final_obs"]["policy"][done], obs["policy"][done])
                assert (env.episode_length_buf[done] == 0).all()
            ended += int(done.sum())
        stats = env.pop_episode_stats()
        assert stats["episodes"] == ended >= 16
        assert 0.0 <= stats["success"] <= 0.5  # random actions rarely end with the pole up
        assert {"term/alive", "term/pole_pos"} <= set(stats)
        # Randomization is Isaac Lab's event manager's: read back, not worldloop terms.
        events = env.randomizer.events()
        assert events["reset_cart_position"] == {
            "mode": "reset", "function": "reset_joints_by_offset", "physical": False,
            "params": {"asset_cfg": {"asset": "robot", "joint_names": ["slider_to_cart"], "body_names": None},
                       "position_range": [-1.0, 1.0], "velocity_range": [-0.5, 0.5]},
        }  # fmt: skip
        assert set(events) == {"reset_cart_position", "reset_pole_position"} and env.randomizer.terms == {}
        with pytest.raises(KeyError, match="reset_pole_position.*events"):
            env.randomizer.physical("pole_mass")
        # The Loop records every field (qpos/qvel are the robot's joints in Isaac Lab's order).
        r = next(worldloop.Loop(env, lambda o: torch.zeros(16, 1)).run(4, chunk=4))
        assert r.obs.shape == (4, 16, 4) and r.qpos.shape == (4, 16, 2) and r.success.shape == (4, 16)
    finally:
        env.close()


@isaaclab
@pytest.mark.isaaclab
def test_reward_weights_are_isaac_labs_and_can_be_changed(asset_root):
    with pytest.raises(KeyError, match="name no reward term"):
        worldloop.make("isaaclab:Isaac-Cartpole-v0", num_envs=2, device="cpu", asset_root=asset_root,
                       weights={"no_such_term": 1.0})  # fmt: skip
    spec = worldloop.get_task("isaaclab:Isaac-Cartpole-v0")
    assert spec.cfg_cls().weights["alive"] == 1.0 and spec.cfg_cls().weights["terminating"] == -2.0
    assert spec.task_cls.train_defaults.agent["num_steps_per_env"] == 16
    env = worldloop.make("isaaclab:Isaac-Cartpole-v0", num_envs=4, device="cpu", asset_root=asset_root,
                         weights={"alive": 3.0, "pole_pos": 0.0, "cart_vel": 0.0, "pole_vel": 0.0})  # fmt: skip
    try:
        env.reset()
        _, reward, terminated, _, _ = env.step(torch.zeros(4, 1))
        # Only the alive term is left: 3 per second of the 1/60 s step, where no episode terminated.
        torch.testing.assert_close(reward[~terminated], torch.full_like(reward[~terminated], 3.0 * env.step_dt))
    finally:
        env.close()


@isaaclab
@pytest.mark.isaaclab
def test_reach_franka_runs_on_the_stand_in_panda(asset_root):
    env = worldloop.make("isaaclab:Isaac-Reach-Franka-v0", num_envs=4, device="cpu", asset_root=asset_root)
    try:
        robot = env.unwrapped.scene["robot"]
        assert robot.joint_names == [*(f"panda_joint{i}" for i in range(1, 8)), "panda_finger_joint1",
                                     "panda_finger_joint2"]  # fmt: skip
        assert "panda_hand" in robot.body_names and "panda_leftfinger" in robot.body_names
        obs, _ = env.reset()
        assert obs["policy"].shape == (4, 32) and env.action_dim == 7
        events = env.randomizer.events()
        assert events and not any(e["physical"] for e in events.values())  # joint-state resets only
        for _ in range(10):
            obs, reward, terminated, truncated, info = env.step(torch.zeros(4, 7))
        assert torch.isfinite(obs["policy"]).all() and torch.isfinite(reward).all()
        assert "end_effector_position_tracking" in info["reward_terms"]
        # A curriculum term changing a weight mid-run (Reach raises action_rate's): terms stay unweighted.
        rm = env.unwrapped.reward_manager
        rm.get_term_cfg("action_rate").weight = -0.5
        _, reward, _, _, info = env.step(torch.full((4, 7), 0.3))
        current = {k: rm.get_term_cfg(k).weight for k in info["reward_terms"]}
        weighted = sum(current[k] * v for k, v in info["reward_terms"].items())
        torch.testing.assert_close(weighted, reward, atol=1e-5, rtol=1e-4)
        assert info["reward_terms"]["action_rate"].abs().sum() > 0
        # Zero actions hold the default pose: the joints stay near it (the drives hold the arm up).
        q0 = robot.data.default_joint_pos.torch[:, :7]
        assert (env.qpos[:, :7] - q0).abs().max() < 0.25
    finally:
        env.close()


@isaaclab
@pytest.mark.isaaclab
def test_train_and_play_run_the_real_commands(asset_root, tmp_path):
    from worldloop.scripts import play, train

    summary = train.main(["--task", "isaaclab:Isaac-Cartpole-v0", "--num-envs", "32", "--max-iterations", "2",
                          "--device", "cpu", "--eval-episodes", "8", "--log-root", str(tmp_path),
                          "--env.asset-root", asset_root])  # fmt: skip
    assert summary["episodes"] == 8 and summary["env_steps"] == 2 * 32 * 16
    run = summary["run_dir"]
    assert Path(run).parent == tmp_path / "isaaclab_Isaac-Cartpole-v0"  # no ':' in the folder name
    saved = json.loads((Path(run) / "config.json").read_text())
    assert saved["backend"] == "isaaclab" and saved["env"]["scene"] == "Isaac-Cartpole"
    assert saved["train"]["task"] == "isaaclab:Isaac-Cartpole-v0"
    out = play.main(["--run", run, "--episodes", "4", "--num-envs", "4"])
    assert out["episodes"] == 4 and out["backend"] == "isaaclab"
    resumed = train.main(["--resume", run, "--max-iterations", "3"])
    assert resumed["run_dir"] == run and (Path(run) / "model_2.pt").is_file()


@isaaclab
@pytest.mark.isaaclab
def test_sim2real_transfer_to_isaaclab_inside_its_environment(tmp_path):
    """``worldloop sim2real`` run in the Isaac Lab environment itself: the counterpart is evaluated in this
    process. A Cartpole-v0 run without model randomization (mujoco 3.12 here has no mujoco.batch)."""
    from worldloop.scripts import sim2real, train

    no_model_terms = ["--rand", "pole_mass=off", "--rand", "cart_mass=off", "--rand", "motor_gain=off"]
    summary = train.main(["--task", "Cartpole-v0", "--num-envs", "16", "--max-iterations", "3", "--backend", "mujoco",
                          "--device", "cpu", "--eval-episodes", "0", "--log-root", str(tmp_path), *no_model_terms,
                          "--agent.num-steps-per-env", "8"])  # fmt: skip
    report = sim2real.main(["--run", summary["run_dir"], "--out", str(tmp_path / "report"), "--backends", "mujoco",
                            "isaaclab", "--episodes", "8", "--other-backend-episodes", "4", "--no-robustness",
                            "--no-rank"])  # fmt: skip
    rows = report["transfer"]["backends"]
    assert list(rows) == ["mujoco", "isaaclab"] and rows["isaaclab"]["task"] == "isaaclab:Isaac-Cartpole-v0"
    assert rows["isaaclab"]["episodes"] == 4 and 0 < rows["isaaclab"]["mean_length"] <= 300
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| isaaclab (`isaaclab:Isaac-Cartpole-v0`) | 4 |" in md and "stand-in cart-pole" in md


@isaaclab
@pytest.mark.isaaclab
def test_collect_writes_a_dataset_that_loads_back(asset_root, tmp_path):
    from worldloop.data import load
    from worldloop.scripts import collect

    out = tmp_path / "ds"
    collect.main(["--task", "isaaclab:Isaac-Cartpole-v0", "--policy", "random", "--episodes", "4", "--num-envs", "4",
                  "--out", str(out), "--env.asset-root", asset_root])  # fmt: skip
    ds = load(out)
    # The stand-in rail stops the cart at 2.4 m, inside Isaac Lab's 3 m bound: every episode runs 300 steps.
    assert ds.num_episodes == 4 and ds.num_frames == 4 * 300
    assert ds.features["observation.qpos"]["names"] == ["slider_to_cart", "cart_to_pole"]
    assert ds.features["observation.state"]["shape"] == [4]


@isaaclab
@pytest.mark.isaaclab
def test_bench_json_prints_one_json_object_only(asset_root, monkeypatch, capsys):
    """Isaac Lab prints its manager tables while building the env; with --json they go to stderr."""
    import json

    from worldloop.scripts.bench import main

    monkeypatch.setenv("ISAACSIM_ASSET_ROOT", asset_root)
    main(["--task", "isaaclab:Isaac-Cartpole-v0", "--num-envs", "8", "--steps", "5", "--json"])
    out = capsys.readouterr().out
    r = json.loads(out)
    assert r["task"] == "isaaclab:Isaac-Cartpole-v0" and "raw_physics_steps_per_s" not in r
    # The text says why there is no raw-physics ratio and what it measures instead.
    main(["--task", "isaaclab:Isaac-Cartpole-v0", "--num-envs", "8", "--steps", "5"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "no raw-physics ratio on isaaclab (measured for mujoco only)" in line
    assert re.search(r"\d+\.\d% of the env step inside Isaac Lab's step", line)


def test_model_randomization_without_mujoco_batch_names_the_cause(monkeypatch):
    """A mujoco without ``mujoco.batch`` (Isaac Lab pins one) is refused with the cause and what to do."""
    import builtins

    real_import = builtins.__import__

    def no_batch(name, *args, **kwargs):
        if name == "mujoco.batch":
            raise ImportError("No module named 'mujoco.batch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_batch)
    with pytest.raises(ImportError, match="need mujoco.batch.*--no-randomization"):
        worldloop.make("Cartpole-v0", num_envs=2, backend="mujoco")
