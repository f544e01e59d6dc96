"""Training as a user meets it: resume after SIGKILL, checkpoints, export, play with video, torchrun."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from worldloop.policies.runner import CheckpointError, load_checkpoint

CLI = [sys.executable, "-m", "worldloop.scripts.cli"]


def _cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A few Cartpole iterations: enough for a real run directory, checkpoints and a policy."""
    root = tmp_path_factory.mktemp("runs")
    _cli(
        "train",
        "--task",
        "Cartpole-v0",
        "--num-envs",
        "32",
        "--max-iterations",
        "4",
        "--save-interval",
        "2",
        "--eval-episodes",
        "32",
        "--log-root",
        str(root),
        "--agent.num-steps-per-env",
        "8",
        cwd=root,
    )
    (run_dir,) = (root / "Cartpole-v0").iterdir()
    return run_dir


def test_checkpoints_are_complete_and_load_weights_only(tiny_run):
    names = {p.name for p in tiny_run.glob("*.pt")}
    assert {"model_0.pt", "model_2.pt", "model_3.pt", "last.pt", "best.pt"} <= names
    assert not list(tiny_run.glob(".*.tmp*")), "no temp files left behind by atomic writes"
    ckpt = load_checkpoint(tiny_run / "last.pt")
    assert ckpt["iter"] == 3 and "torch_rng_state" in ckpt and "env_rng_state" in ckpt


def test_corrupt_or_foreign_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pt") as e:
        load_checkpoint(bad)
    assert "weights_only" not in str(e.value)  # not torch's advice to load it unsafely
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match=r"foreign.pt.*missing.*actor_state_dict"):
        load_checkpoint(foreign)
    r = subprocess.run([*CLI, "play", "--run", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "config.json" in r.stderr
    (tmp_path / "config.json").write_text('{"train": {"task": "Cartpole-v0",\n')  # cut short
    r = subprocess.run([*CLI, "play", "--run", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and f"{tmp_path / 'config.json'} is not valid JSON" in r.stderr, r.stderr


def test_export_onnx_and_torchscript_match_torch(tiny_run):
    import onnxruntime as ort

    from worldloop.policies.train import load_run
    from worldloop.scripts.export import export

    paths = export(str(tiny_run), checkpoint="last")
    env, runner = load_run(tiny_run, checkpoint="last", num_envs=1, device="cpu")
    actor = runner.get_inference_policy(device="cpu")
    obs = torch.randn(1024, paths["n_obs"]) * 3.0
    from tensordict import TensorDict

    with torch.inference_mode():
        expected = actor(TensorDict({"policy": obs, "critic": obs}, batch_size=[1024])).numpy()
    sess = ort.InferenceSession(paths["onnx"])
    (inp,) = sess.get_inputs()
    assert inp.name == "obs" and isinstance(inp.shape[0], str) and inp.shape[1] == paths["n_obs"]  # dynamic batch
    got = np.concatenate([sess.run(None, {"obs": o[None].numpy()})[0] for o in obs[:50]])  # batch 1
    np.testing.assert_allclose(got, expected[:50], atol=1e-5, rtol=0)
    for batch in (32, 1024):
        (got,) = sess.run(None, {"obs": obs[:batch].numpy()})
        np.testing.assert_allclose(got, expected[:batch], atol=1e-5, rtol=0)
    jit = torch.jit.load(paths["torchscript"])
    np.testing.assert_allclose(jit(obs).detach().numpy(), expected, atol=1e-5, rtol=0)
    env.close()


def test_export_on_the_command_line_prints_its_result_not_the_exporters_notes(tiny_run, tmp_path):
    r = _cli("export", "--run", str(tiny_run), "--checkpoint", "last", cwd=tmp_path)
    assert "[worldloop] exported" in r.stdout
    assert "torchvision is not installed" not in r.stderr and "LeafSpec" not in r.stderr


def test_play_with_rand_evaluates_shifted_physics_beside_the_nominal_report(tiny_run):
    from worldloop.policies.run_dir import ConfigError
    from worldloop.scripts.play import main as play_main

    argv = ["--run", str(tiny_run), "--episodes", "8", "--rand", "pole_mass.range=3,3", "--rand=obs_noise=off"]
    out = play_main(argv)
    report = json.loads((tiny_run / "play_mujoco_rand.json").read_text())
    assert report["rand"] == out["rand"] == ["pole_mass.range=3,3", "obs_noise=off"] and report["episodes"] == 8
    with pytest.raises(ConfigError, match="pole_mas"):
        play_main(["--run", str(tiny_run), "--episodes", "8", "--rand", "pole_mas.range=3,3"])


def test_play_on_a_folder_of_runs_or_a_mistyped_run_names_the_runs_there(tiny_run):
    from worldloop.policies.run_dir import read_config

    with pytest.raises(FileNotFoundError, match=rf"Runs in it .*{tiny_run.name}"):
        read_config(tiny_run.parent)  # the task's folder of runs
    with pytest.raises(FileNotFoundError, match=rf"Runs beside it .*{tiny_run.name}"):
        read_config(tiny_run.parent / "2026-01-01_00-00-00")  # a mistyped date


def test_play_video_without_pyav_is_refused_before_the_evaluation(tiny_run, monkeypatch):
    from worldloop.scripts import play

    evaluated = []
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    monkeypatch.setattr(play, "evaluate", lambda *a, **k: evaluated.append(1))
    with pytest.raises(ImportError, match=r"video needs PyAV.*\[video\]"):
        play.main(["--run", str(tiny_run), "--episodes", "8", "--video"])
    assert not evaluated


def test_play_reports_success_and_writes_a_watchable_video(tiny_run):
    import av

    r = _cli("play", "--run", str(tiny_run), "--episodes", "16", "--video", "--video-steps", "40", cwd=tiny_run)
    assert "success" in r.stdout and "95% CI" in r.stdout
    report = json.loads((tiny_run / "play_mujoco.json").read_text())
    assert report["episodes"] == 16 and 0 <= report["success_ci95"][0] <= report["success_rate"]
    with av.open(str(tiny_run / "play.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 40 and frames[0].shape == (360, 480, 3)
    # Something is drawn and something moves.
    assert frames[0].std() > 5 and np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 0.1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tiny_run))
    acc.Reload()
    assert "Play/video" in acc.Tags()["images"]


@pytest.mark.slow
def test_sigkilled_run_resumes_and_reaches_the_same_success(tmp_path):
    """Kill -9 mid-run and resume: at most one checkpoint interval is lost, and the resumed run ends at the
    success an uninterrupted run reaches (Cartpole's default config is at 100% training success from
    iteration ~55 of 80)."""
    args = [
        "train",
        "--task",
        "Cartpole-v0",
        "--max-iterations",
        "80",  # 100% training success from iteration ~55 (of the default 150)
        "--save-interval",
        "10",
        "--eval-episodes",
        "200",
        "--log-root",
        str(tmp_path),
    ]
    proc = subprocess.Popen(
        [*CLI, *args, "--run-name", "killed"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    killed_at = None
    for line in proc.stdout:  # plain progress lines: "it    47/80 ..."
        if line.startswith("it ") and int(line.split()[1].split("/")[0]) >= 45:
            killed_at = int(line.split()[1].split("/")[0])
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert killed_at is not None and proc.returncode == -signal.SIGKILL
    run_dir = next((tmp_path / "Cartpole-v0").glob("*_killed"))
    r = _cli("train", "--resume", str(run_dir), cwd=tmp_path)
    resumed_from = int(r.stdout.split("at iteration ")[1].split()[0])
    assert killed_at - 10 <= resumed_from <= killed_at  # at most one checkpoint interval lost
    resumed = json.loads((run_dir / "eval.json").read_text())
    assert resumed["success_rate"] >= 0.9, resumed
    assert (run_dir / "model_79.pt").is_file()


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            "29517",
            "-m",
            "worldloop.scripts.train",
            "--task",
            "Cartpole-v0",
            "--num-envs",
            "32",
            "--max-iterations",
            "3",
            "--eval-episodes",
            "32",
            "--log-root",
            str(tmp_path),
            "--agent.num-steps-per-env",
            "8",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WORLDLOOP_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = (tmp_path / "Cartpole-v0").iterdir()  # rank 0 alone writes the run
    ev = json.loads((run_dir / "eval.json").read_text())
    assert ev["processes"] == 2 and ev["env_steps"] == 3 * 32 * 8 * 2


def test_reward_scale_reaches_ppo_but_not_the_logged_returns():
    import worldloop
    from worldloop.policies.rsl_rl_adapter import RslRlVecEnv

    def rollout(scale: float) -> tuple[torch.Tensor, dict]:
        env = worldloop.make("Cartpole-v0", num_envs=8, backend="mujoco", seed=3)
        vec = RslRlVecEnv(env, log_interval=200, reward_scale=scale)
        actions = torch.linspace(-1, 1, 8).unsqueeze(-1).expand(8, env.action_dim)
        rewards = torch.stack([vec.step(actions)[1] for _ in range(200)])
        return rewards, vec.last_stats

    plain, plain_stats = rollout(1.0)
    scaled, scaled_stats = rollout(0.02)
    assert plain.abs().sum() > 0
    torch.testing.assert_close(scaled, 0.02 * plain)
    assert plain_stats["episodes"] > 0
    assert scaled_stats["return"] == pytest.approx(plain_stats["return"])
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="reward_scale"):
            RslRlVecEnv(worldloop.make("Cartpole-v0", num_envs=2, backend="mujoco"), log_interval=1, reward_scale=bad)


def test_a_step_both_terminated_and_truncated_is_not_a_time_out():
    """A pole past its limit on the episode's last step is terminal: PPO must not bootstrap it."""
    import worldloop
    from worldloop.policies.rsl_rl_adapter import RslRlVecEnv

    env = worldloop.make("Cartpole-v0", num_envs=2, backend="mujoco", seed=0, episode_length_s=0.02)
    assert env.max_episode_length == 1  # every step is the last one: truncated
    env.reset()
    qpos = torch.zeros(1, env.nq)
    qpos[0, env.task.th_col] = 1.0  # [rad] past max_angle (0.4)
    env.set_state(qpos, torch.zeros(1, env.nv), torch.tensor([0]))
    vec = RslRlVecEnv(env, log_interval=100)
    _, _, dones, extras = vec.step(torch.zeros(2, env.action_dim))
    assert dones.tolist() == [1, 1]
    assert extras["time_outs"].tolist() == [False, True]

    env.reset()
    env.set_state(qpos, torch.zeros(1, env.nv), torch.tensor([0]))
    _, _, terminated, truncated, info = env.step(torch.zeros(2, env.action_dim))
    assert terminated.tolist() == [True, False] and truncated.tolist() == [True, True]  # both flags kept
    assert info["time_outs"].tolist() == [False, True]


def test_resume_keeps_the_best_checkpoint(tmp_path):
    """A resumed run replaces best.pt only with a better success than the best before the resume."""
    import worldloop
    from worldloop.policies.rsl_rl_adapter import RslRlVecEnv
    from worldloop.policies.runner import Runner
    from worldloop.policies.train import TrainCfg, rsl_rl_cfg

    cfg = TrainCfg.from_task("Cartpole-v0", num_envs=4)

    def runner() -> tuple[Runner, RslRlVecEnv]:
        vec = RslRlVecEnv(worldloop.make("Cartpole-v0", num_envs=4, backend="mujoco", seed=0), log_interval=8)
        return Runner(vec, rsl_rl_cfg(cfg), log_dir=None, device="cpu"), vec

    first, vec = runner()
    vec.last_stats = {"success": 0.038}
    first.current_learning_iteration = 10
    first.save(str(tmp_path / "model_10.pt"))

    resumed, vec = runner()
    resumed.load(str(tmp_path / "last.pt"))
    vec.last_stats = {"success": 0.0}
    resumed.current_learning_iteration = 12
    resumed.save(str(tmp_path / "model_12.pt"))
    assert load_checkpoint(tmp_path / "best.pt")["iter"] == 10  # the worse checkpoint did not replace it
    assert load_checkpoint(tmp_path / "last.pt")["iter"] == 12
    assert resumed.best_success == pytest.approx(0.038)
    assert load_checkpoint(tmp_path / "last.pt")["best_success"] == pytest.approx(0.038)
    vec.last_stats = {"success": 0.5}
    resumed.current_learning_iteration = 14
    resumed.save(str(tmp_path / "model_14.pt"))
    assert load_checkpoint(tmp_path / "best.pt")["iter"] == 14


@pytest.mark.slow
def test_sigkill_at_random_moments_always_resumes_and_leaves_only_whole_files(tmp_path):
    """Runs killed before their first checkpoint and at three random moments (imports, config, training,
    checkpoint writes, evaluation: a run takes ~6 s) resume to the end, and no visible file is ever
    half-written."""
    import random
    import time

    rng = random.Random(0)
    args = ["train", "--task", "Cartpole-v0", "--num-envs", "16", "--max-iterations", "40", "--save-interval", "3"]
    args += ["--agent.num-steps-per-env", "8", "--eval-episodes", "8", "--log-root", str(tmp_path)]
    for trial in range(4):
        proc = subprocess.Popen(
            [*CLI, *args, "--run-name", f"k{trial}"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if trial == 0:  # as soon as the run directory exists, before its first checkpoint
            while not list(tmp_path.glob("Cartpole-v0/*_k0/config.json")) and proc.poll() is None:
                time.sleep(0.01)
            assert not list(tmp_path.glob("Cartpole-v0/*_k0/*.pt"))
        else:
            time.sleep(rng.uniform(1.5, 7.0))
        proc.kill()
        proc.wait(timeout=60)
        runs = list(tmp_path.glob(f"Cartpole-v0/*_k{trial}"))
        if not runs or not (runs[0] / "config.json").is_file():  # killed before the run existed
            assert all(p.name.startswith(".") for r in runs for p in r.iterdir())
            continue
        (run,) = runs
        json.loads((run / "config.json").read_text())
        for ckpt in run.glob("*.pt"):  # every visible checkpoint is whole
            load_checkpoint(ckpt)
        if (run / "eval.json").is_file():
            json.loads((run / "eval.json").read_text())
        _cli("train", "--resume", str(run), cwd=tmp_path)
        assert not list(run.glob(".*.tmp*")), f"trial {trial}: temp files left"
        assert load_checkpoint(run / "last.pt")["iter"] == 39
        assert json.loads((run / "eval.json").read_text())["episodes"] == 8


def test_the_progress_line_counts_physics_resets(tmp_path, monkeypatch, capsys):
    """A run whose physics keeps diverging shows it on the console: env 0 diverges at every step, so each
    iteration of 8 steps resets it 8 times, and the progress line says so."""
    from worldloop.envs.backends.mujoco_backend import MujocoBackend
    from worldloop.policies.train import TrainCfg, train

    step = MujocoBackend.step

    def diverging(self, ctrl, nsteps):  # the backend reports env 0 diverged at every step
        diverged = step(self, ctrl, nsteps)
        diverged[0] = True
        return diverged

    monkeypatch.setattr(MujocoBackend, "step", diverging)
    monkeypatch.chdir(tmp_path)  # MuJoCo's instability warnings go to MUJOCO_LOG.TXT here
    cfg = TrainCfg.from_task("Cartpole-v0", num_envs=8, max_iterations=2, eval_episodes=8,
                             log_root=str(tmp_path / "runs"))  # fmt: skip
    cfg.agent.num_steps_per_env = 8
    train(cfg)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("it ")]
    assert len(lines) == 2 and all("resets    8" in ln for ln in lines), lines


def test_checkpoint_evaluation_logs_each_checkpoint_and_picks_best_by_it(tmp_path, monkeypatch):
    """With --checkpoint-eval-episodes every checkpoint's deterministic policy runs on envs of its own: the
    results go to tensorboard and eval.json, and best.pt is the checkpoint with the best of them, not the one
    with the best training success (made to rise at every iteration here)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from worldloop.envs.batched_env import BatchedEnv
    from worldloop.policies.train import TrainCfg, train

    pop = BatchedEnv.pop_episode_stats
    calls = {}

    def rising(self):  # the training env's success: 0.1, 0.2, ... per log line; the eval envs' untouched
        stats = pop(self)
        calls[id(self)] = calls.get(id(self), 0) + 1
        return {**stats, "success": 0.1 * calls[id(self)]}

    monkeypatch.setattr(BatchedEnv, "pop_episode_stats", rising)

    cfg = TrainCfg.from_task("Franka-Reach-v0", num_envs=64, max_iterations=4, eval_episodes=0, save_interval=1,
                             checkpoint_eval_episodes=32, log_root=str(tmp_path))  # fmt: skip
    cfg.agent.num_steps_per_env = 8
    summary = train(cfg)
    run = Path(summary["run_dir"])
    evals = summary["checkpoint_evals"]
    assert sorted(evals) == [0, 1, 2, 3] and all(e["episodes"] == 32 for e in evals.values())
    acc = EventAccumulator(str(run))
    acc.Reload()
    logged = {e.step: e.value for e in acc.Scalars("Eval/success")}
    assert logged == pytest.approx({k: e["success_rate"] for k, e in evals.items()})
    assert all(math.isfinite(e.value) for e in acc.Scalars("Eval/return"))
    best = load_checkpoint(run / "best.pt")
    top = max(e["success_rate"] for e in evals.values())
    first_top = min(k for k, e in evals.items() if e["success_rate"] == top)
    assert best["iter"] == first_top and best["best_success"] == pytest.approx(top)
    assert summary["best_checkpoint"]["iteration"] == first_top
    on_disk = json.loads((run / "eval.json").read_text())
    assert on_disk["best_checkpoint"]["success_rate"] == pytest.approx(top)


def test_init_from_a_run_with_another_actor_names_the_differing_setting(tmp_path):
    import dataclasses

    from worldloop.policies.run_dir import CheckpointError
    from worldloop.policies.train import TrainCfg, train

    cfg = TrainCfg.from_task("Cartpole-v0", num_envs=8, max_iterations=1, eval_episodes=0, log_root=str(tmp_path))
    small = dataclasses.replace(cfg.agent, num_steps_per_env=4, actor_hidden_dims=[16])
    source = train(dataclasses.replace(cfg, agent=small, run_name="source"))["run_dir"]
    other = dataclasses.replace(small, actor_hidden_dims=[32])
    with pytest.raises(
        CheckpointError, match=r"differ from .*config.json: --agent.actor-hidden-dims \[32\] here, \[16\] there$"
    ):
        train(dataclasses.replace(cfg, agent=other, run_name="init", init=source))


def test_critic_warmup_trains_the_critic_and_leaves_the_initial_actor_as_it_was(tmp_path):
    """`--init` with `--agent.critic-warmup-iterations 2`: iterations 0 and 1 move the critic only (the actor's
    weights and normalizer stay bit for bit those of the source, the std restarts at the run's init std);
    PPO moves the actor's weights from iteration 2 on, not its observation normalizer (frozen for --init)."""
    import dataclasses

    from worldloop.policies import run_dir
    from worldloop.policies.runner import load_checkpoint
    from worldloop.policies.train import TrainCfg, train

    cfg = TrainCfg.from_task("Cartpole-v0", num_envs=8, max_iterations=1, eval_episodes=0, save_interval=1,
                             log_root=str(tmp_path))  # fmt: skip
    small = dataclasses.replace(cfg.agent, num_steps_per_env=8, actor_hidden_dims=[16], critic_hidden_dims=[16])
    source = train(dataclasses.replace(cfg, agent=small, run_name="source"))["run_dir"]
    warm = dataclasses.replace(small, critic_warmup_iterations=2, init_noise_std=0.3)
    run = train(dataclasses.replace(cfg, agent=warm, max_iterations=3, init=source, run_name="warm"))["run_dir"]
    src = load_checkpoint(run_dir.find_checkpoint(source))["actor_state_dict"]
    ckpt = [load_checkpoint(f"{run}/model_{i}.pt") for i in range(3)]
    for key, value in src.items():
        if key.endswith("std_param"):
            assert torch.allclose(ckpt[1]["actor_state_dict"][key], torch.full_like(value, 0.3))
        else:
            assert torch.equal(ckpt[1]["actor_state_dict"][key], value), key
    critics = [c["critic_state_dict"]["mlp.0.weight"] for c in ckpt]
    assert not torch.equal(critics[0], critics[1])  # the critic learned in the warm-up
    moved = [
        k for k, v in src.items() if not k.endswith("std_param") and not torch.equal(ckpt[2]["actor_state_dict"][k], v)
    ]
    assert any(k.startswith("mlp.") for k in moved), moved  # PPO moved the actor after it
    assert not any(k.startswith("obs_normalizer.") for k in moved), moved  # with the statistics it was fitted to
    with pytest.raises(ValueError, match=r"critic-warmup-iterations"):
        train(dataclasses.replace(cfg, agent=dataclasses.replace(small, critic_warmup_iterations=-1)))


def test_the_progress_line_shows_no_return_when_no_episode_ended(tmp_path, monkeypatch, capsys):
    """The return shown is the task's; with no finished episode it is '-', never rsl-rl's buffer of the
    scaled reward PPO saw (which read as a collapse: ~80 instead of ~4,000 on Lift after a resume)."""
    from worldloop.envs.batched_env import BatchedEnv
    from worldloop.policies.train import TrainCfg, train

    pop = BatchedEnv.pop_episode_stats

    def no_episode_ended(self):
        pop(self)  # the env's own bookkeeping still runs
        return {"episodes": 0.0, "physics_resets": 0.0}

    monkeypatch.setattr(BatchedEnv, "pop_episode_stats", no_episode_ended)
    cfg = TrainCfg.from_task("Cartpole-v0", num_envs=8, max_iterations=3, eval_episodes=0, log_root=str(tmp_path))
    cfg.agent.num_steps_per_env = 16  # random Cartpole episodes end within a few dozen steps
    train(cfg)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("it ")]
    assert len(lines) == 3 and all("return     -  " in ln for ln in lines), lines


def _rollout_and_weights(vec, cfg) -> tuple[dict, list[dict]]:
    """One iteration of a fresh Runner on ``vec``: the rollout its update saw and the actor's and critic's weights
    after it, for comparing updates of other runners (whose optimizers stay fresh) on the same data."""
    import copy

    from worldloop.policies.runner import Runner
    from worldloop.policies.train import rsl_rl_cfg

    rollout = {}
    first = Runner(vec, rsl_rl_cfg(cfg), log_dir=None, device="cpu")
    update = first.alg.update
    first.alg.update = lambda: rollout.update(copy.deepcopy(vars(first.alg.storage))) or update()
    first.learn(1)
    return rollout, [copy.deepcopy(m.state_dict()) for m in (first.alg.actor, first.alg.critic)]


def _load_rollout(alg, rollout: dict, weights: list[dict]) -> None:
    """Put ``weights`` into ``alg``'s actor and critic and a copy of ``rollout`` into its storage."""
    import copy

    alg.actor.load_state_dict(weights[0])
    alg.critic.load_state_dict(weights[1])
    for k, v in copy.deepcopy(rollout).items():
        setattr(alg.storage, k, v)


def test_elu_in_place_computes_the_same_update_as_rsl_rl():
    """The Runner's actor and critic run their ELU layers in place (a faster backward); on the same rollout and
    weights, the update then computes what rsl-rl's out-of-place layers compute: the same losses and weights, to
    float rounding."""

    import worldloop
    from worldloop.policies.rsl_rl_adapter import RslRlVecEnv
    from worldloop.policies.runner import Runner
    from worldloop.policies.train import TrainCfg, rsl_rl_cfg

    vec = RslRlVecEnv(worldloop.make("Cartpole-v0", num_envs=64, backend="mujoco", seed=0), log_interval=8)
    cfg = TrainCfg.from_task("Cartpole-v0", num_envs=64)
    runners = {}
    for in_place in (True, False):
        torch.manual_seed(0)
        runners[in_place] = r = Runner(vec, rsl_rl_cfg(cfg), log_dir=None, device="cpu")
        elus = [[m for m in model.modules() if isinstance(m, torch.nn.ELU)] for model in (r.alg.actor, r.alg.critic)]
        assert all(layers for layers in elus) and all(m.inplace for layers in elus for m in layers)
        elus = [m for layers in elus for m in layers]
        for m in elus:
            m.inplace = in_place
    rollout, weights = _rollout_and_weights(vec, cfg)
    losses, before, after = {}, {}, {}

    def flat(r):
        return torch.cat([p.detach().flatten() for p in (*r.alg.actor.parameters(), *r.alg.critic.parameters())])

    for in_place, r in runners.items():
        _load_rollout(r.alg, rollout, weights)
        before[in_place] = flat(r).clone()
        torch.manual_seed(1)
        losses[in_place] = r.alg.update()
        after[in_place] = flat(r)
    assert losses[True] == pytest.approx(losses[False], rel=1e-4, abs=1e-7)
    torch.testing.assert_close(before[True], before[False], rtol=0, atol=0)
    assert (after[False] - before[False]).abs().max() > 1e-4  # the update moved the weights: agreeing means something
    torch.testing.assert_close(after[True], after[False], rtol=1e-4, atol=1e-6)


def test_gather_once_storage_yields_rsl_rls_mini_batches():
    """The Runner's storage gathers the permuted rollout once per update; its mini-batches are rsl-rl's, sample for
    sample and in the same order, from the same random draw."""
    from rsl_rl.storage import RolloutStorage

    import worldloop
    from worldloop.policies.rsl_rl_adapter import RslRlVecEnv
    from worldloop.policies.runner import GatherOnceRolloutStorage, Runner
    from worldloop.policies.train import TrainCfg, rsl_rl_cfg

    vec = RslRlVecEnv(worldloop.make("Cartpole-v0", num_envs=64, backend="mujoco", seed=0), log_interval=8)
    cfg = TrainCfg.from_task("Cartpole-v0", num_envs=64)
    rollout, weights = _rollout_and_weights(vec, cfg)
    r = Runner(vec, rsl_rl_cfg(cfg), log_dir=None, device="cpu")
    st = r.alg.storage
    assert type(st) is GatherOnceRolloutStorage
    _load_rollout(r.alg, rollout, weights)
    batches = {}
    for name, generator in (("ours", st.mini_batch_generator), ("rsl-rl", RolloutStorage.mini_batch_generator)):
        torch.manual_seed(3)
        gen = generator(4, 3) if name == "ours" else generator(st, 4, 3)
        batches[name] = [
            [b.observations["policy"], b.observations["critic"], b.actions, b.values, b.advantages, b.returns]
            + [b.old_actions_log_prob, *b.old_distribution_params]
            for b in gen
        ]
    assert len(batches["ours"]) == len(batches["rsl-rl"]) == 12
    for ours, theirs in zip(batches["ours"], batches["rsl-rl"], strict=True):
        assert len(ours) == len(theirs) == 9
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    first, second = batches["ours"][0][0], batches["ours"][1][0]
    assert first.shape[0] == 64 * cfg.agent.num_steps_per_env // 4 and not torch.equal(first, second)


def test_mixed_precision_runs_the_update_in_bfloat16_and_keeps_float32_weights():
    """``--agent.mixed-precision on``: the update's matrix products run in bfloat16 (seen in the actor's
    output during the update), its losses stay within a few percent of float32's on the same rollout,
    and the weights stay float32; ``auto`` follows the hardware check, ``off`` is float32 throughout."""

    import worldloop
    from worldloop.policies.ppo import native_bf16
    from worldloop.policies.rsl_rl_adapter import RslRlVecEnv
    from worldloop.policies.runner import Runner
    from worldloop.policies.train import TrainCfg, rsl_rl_cfg

    vec = RslRlVecEnv(worldloop.make("Cartpole-v0", num_envs=64, backend="mujoco", seed=0), log_interval=8)
    runners, dtypes, losses = {}, {}, {}
    for mode in ("off", "on", "auto"):
        cfg = TrainCfg.from_task("Cartpole-v0", num_envs=64)
        cfg.agent.mixed_precision = mode
        torch.manual_seed(0)
        runners[mode] = Runner(vec, rsl_rl_cfg(cfg), log_dir=None, device="cpu")
    assert runners["auto"].alg.use_mixed_precision == native_bf16("cpu")
    assert not runners["off"].alg.use_mixed_precision and runners["on"].alg.use_mixed_precision

    rollout, weights = _rollout_and_weights(vec, cfg)
    for mode in ("off", "on"):
        alg = runners[mode].alg
        _load_rollout(alg, rollout, weights)
        seen = []
        hook = alg.actor.mlp.register_forward_hook(lambda m, i, o, seen=seen: seen.append(o.dtype))
        torch.manual_seed(1)
        losses[mode] = alg.update()
        hook.remove()
        dtypes[mode] = set(seen)
        assert all(p.dtype == torch.float32 for p in alg.actor.parameters())
    assert dtypes == {"off": {torch.float32}, "on": {torch.bfloat16}}
    assert losses["on"]["value"] == pytest.approx(losses["off"]["value"], rel=0.05)
    assert losses["on"]["entropy"] == pytest.approx(losses["off"]["entropy"], rel=0.01)
