"""Datasets: collection into the LeRobot v3.0 layout, reading back, crash safety, restore and replay."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import worldloop
import worldloop.data as wd
from worldloop.data import layout
from worldloop.data.progress import Progress
from worldloop.envs.loop import Loop

LIFT = "Franka-Lift-v0"
NUM_ENVS = 3


@pytest.fixture(scope="module")
def lift(tmp_path_factory) -> tuple[Path, wd.CollectSummary]:
    """4 expert episodes of Franka-Lift-v0 (3 envs: 6 started, the first 4 kept)."""
    out = tmp_path_factory.mktemp("data") / "lift"
    s = wd.collect(LIFT, out, episodes=4, num_envs=NUM_ENVS, backend="mujoco", seed=7, progress=None)
    return out, s


def test_collected_episodes_read_back_exactly(lift):
    """The dataset holds what the Loop produced: a rerun with the same seed gives equal float32 values."""
    out, s = lift
    assert (s.episodes, s.new_episodes, s.dropped) == (4, 4, 2)  # 2 of the second round are not kept
    ds = wd.load(out, task=LIFT)
    env = worldloop.make(LIFT, num_envs=NUM_ENVS, backend="mujoco", seed=7)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        env.reset()
        T = env.max_episode_length
        r = next(Loop(env, lambda obs: env.task.expert()).run(T, chunk=T))
    finally:
        torch.set_num_threads(threads)
        env.close()
    for i in range(NUM_ENVS):  # the first round's episodes, numbered by env index
        ep = ds.episode(i)
        assert len(ep["action"]) == T
        for col, ref in (
            ("observation.state", r.obs[:, i]),
            ("observation.environment_state", r.critic_obs[:, i]),
            ("action", r.actions[:, i]),
            ("observation.qpos", r.qpos[:, i]),
            ("observation.qvel", r.qvel[:, i]),
            ("next.reward", r.rewards[:, i]),
            ("next.success", r.success[:, i]),
            ("next.terminated", r.terminated[:, i]),
        ):
            assert ep[col].dtype == ref.dtype, col
            assert torch.equal(ep[col], ref), col
        assert torch.equal(ep["frame_index"], torch.arange(T))
        assert torch.equal(ep["episode_index"], torch.full((T,), i))
        assert ep["next.done"].tolist() == [False] * (T - 1) + [True]
    assert ds.episodes["success"].tolist() == [bool(ds.episode(i)["next.success"][-1]) for i in range(4)]
    returns = torch.stack([ds.episode(i)["next.reward"].double().sum() for i in range(4)])
    assert torch.allclose(ds.episodes["return"], returns)


def test_files_follow_the_lerobot_v3_layout(lift):
    out, s = lift
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["fps"] == 50 and info["robot_type"] == "franka"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (4, s.frames, 1)
    assert info["chunks_size"] == 1000 and info["data_files_size_in_mb"] == 100
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["splits"] == {"train": "0:4"}
    feats = info["features"]
    for name in ("observation.state", "observation.environment_state", "action", "observation.qpos",
                 "observation.qvel", "next.reward", "next.done", "next.success", "timestamp", "frame_index",
                 "episode_index", "index", "task_index"):  # fmt: skip
        assert set(feats[name]) == {"dtype", "shape", "names"}, name
        assert "/" not in name
    assert feats["observation.qpos"]["shape"] == [16] and feats["observation.qpos"]["names"][9:12] == [
        "cube_joint.x",
        "cube_joint.y",
        "cube_joint.z",
    ]
    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    for name, ft in feats.items():  # every feature is a column of the declared type and width
        t = data.schema.field(name).type
        if ft["shape"] == [1]:
            assert t == layout.ARROW_TYPES[ft["dtype"]], name
        else:
            assert pa.types.is_fixed_size_list(t) and t.list_size == ft["shape"][0], name
    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert tasks.column_names == ["task_index", "task"] and tasks["task_index"].to_pylist() == [0]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    eps = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    for col in ("episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                "dataset_to_index", "success", "return", "seed", "backend", "rand/object_mass/cube",
                "rand/joint_damping/joint1"):  # fmt: skip
        assert col in eps, col
    assert "rand/obs_noise/policy[0]" not in eps  # redrawn every step: no per-episode value
    ep_of_row = data["episode_index"].to_numpy()
    index = data["index"].to_numpy()
    for e, a, b in zip(eps["episode_index"], eps["dataset_from_index"], eps["dataset_to_index"], strict=True):
        assert (ep_of_row[a:b] == e).all() and (index[a:b] == np.arange(a, b)).all()
    assert eps["seed"] == [7] * 4 and eps["backend"] == ["mujoco"] * 4
    stats = json.loads((out / "meta/stats.json").read_text())
    assert set(stats["action"]) == {"mean", "std", "min", "max", "count"}
    assert stats["action"]["count"] == [s.frames] and len(stats["observation.state"]["mean"]) == 36
    actions = data["action"].combine_chunks().flatten().to_numpy().reshape(-1, 5)
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), rtol=1e-5, atol=1e-6)


def test_replay_reproduces_the_logged_cube_trajectory_on_mujoco(lift):
    out, _ = lift
    ds = wd.load(out)
    r = wd.replay(ds, [0, 3], backend="mujoco")
    assert r.valid.all()
    assert float(r.max_error("cube_joint").max()) < 1e-4  # [m]; deterministic on the CPU: in fact 0
    assert float(r.max_error().max()) < 1e-4


def _random_frames(rng, lengths, widths):
    m = int(sum(lengths))
    frames = {n: rng.standard_normal((m, w)).astype(np.float32) for n, w in widths.items()}
    frames["next.reward"] = rng.standard_normal(m).astype(np.float32)
    frames["next.done"] = np.zeros(m, dtype=bool)
    frames["next.done"][np.cumsum(lengths) - 1] = True
    return frames


def _writer(path, size_mb=1, resume=False):
    feats = {
        "observation.state": layout.feature("float32", 7),
        "action": layout.feature("float32", 3),
        "next.reward": layout.feature("float32", 1),
        "next.done": layout.feature("bool", 1),
    }
    return wd.DatasetWriter(path, features=feats, fps=20, robot_type="toy", task="a toy task",
                            episode_columns={"seed": pa.int64()}, worldloop={"task": "Toy-v0"},
                            data_files_size_in_mb=size_mb, resume=resume)  # fmt: skip


def test_writer_round_trip_rollover_and_windows(tmp_path):
    """Episodes of many lengths over several commits and data files read back exactly; K-step windows
    never cross an episode end."""
    rng = np.random.default_rng(0)
    w = _writer(tmp_path / "ds")
    sent = []
    for i in range(6):
        lengths = rng.integers(1, 40, size=rng.integers(1, 5))
        frames = _random_frames(rng, lengths, {"observation.state": 7, "action": 3})
        w.add(frames, lengths, {"seed": [i] * len(lengths)})
        sent.append((frames, lengths))
        w.commit(wait=bool(i % 2))
    w.close()
    w = _writer(tmp_path / "ds", size_mb=1, resume=True)  # a writer reopened on the dataset continues it
    big = np.full(30000, 1)  # ~1.3 MB of frames in one commit: split over two data files
    frames = _random_frames(rng, big, {"observation.state": 7, "action": 3})
    w.add(frames, big, {"seed": [9] * len(big)})
    w.commit()
    w.close()
    sent.append((frames, big))
    files = sorted((tmp_path / "ds/data").rglob("*.parquet"))
    assert len(files) >= 2 and all(f.stat().st_size <= 2**20 for f in files)
    ds = wd.load(tmp_path / "ds")
    for col in ("observation.state", "action", "next.reward", "next.done"):
        expect = np.concatenate([f[col] for f, _ in sent])
        assert ds.frames[col].dtype == {"next.done": torch.bool}.get(col, torch.float32)
        assert np.array_equal(ds.frames[col].numpy(), expect), col
    lengths = np.concatenate([ln for _, ln in sent])
    assert ds.episodes["length"].tolist() == lengths.tolist()
    ep = ds.frames["episode_index"]
    for k in (1, 5, 39):
        starts = ds.window_starts(k)
        assert len(starts) == int(np.clip(lengths - k + 1, 0, None).sum())
        for batch in ds.windows(k, batch_size=500, shuffle=True, columns=["episode_index", "frame_index"]):
            assert batch["episode_index"].shape[1] == k
            assert (batch["episode_index"] == batch["episode_index"][:, :1]).all()
            assert (batch["frame_index"].diff(dim=1) == 1).all()
        assert bool((ep[starts + k - 1] == ep[starts]).all())


def _break(path: Path, edit) -> Path:
    data = json.loads((path / "meta/info.json").read_text())
    edit(data)
    (path / "meta/info.json").write_text(json.dumps(data))
    return path


def test_bad_datasets_are_refused_naming_path_and_column(lift, tmp_path):
    import shutil

    out, _ = lift
    with pytest.raises(wd.DatasetError, match=r"worldloop\.task is 'Franka-Lift-v0', expected 'Franka-Push-v0'"):
        wd.load(out, task="Franka-Push-v0")
    with pytest.raises(wd.DatasetError, match="robot_type"):
        wd.load(out, robot_type="ur5")
    reach = worldloop.make("Franka-Reach-v0", num_envs=1, backend="mujoco")
    with pytest.raises(wd.DatasetError, match="another task"):
        wd.load(out, env=reach)
    reach.close()
    with pytest.raises(wd.DatasetError, match="no feature 'observation.images.top'"):
        wd.load(out, columns=["observation.images.top"])
    with pytest.raises(wd.DatasetError, match=r"missing; not a LeRobot v3\.0 dataset"):
        wd.load(tmp_path)

    def copy(name):
        dst = tmp_path / name
        shutil.copytree(out, dst)
        return dst

    bad = _break(copy("v21"), lambda d: d.update(codebase_version="v2.1"))
    with pytest.raises(wd.DatasetError, match=rf"{bad}/meta/info.json: codebase_version is 'v2.1'"):
        wd.load(bad)
    bad = _break(copy("shape"), lambda d: d["features"]["action"].update(shape=[7]))
    with pytest.raises(wd.DatasetError, match=rf"{bad}/data/chunk-000/file-000.parquet: column 'action'"):
        wd.load(bad)
    bad = _break(copy("slash"), lambda d: d["features"].update({"observation/x": d["features"]["action"]}))
    with pytest.raises(wd.DatasetError, match="'observation/x' contains '/'"):
        wd.load(bad)
    bad = copy("missing")
    f = bad / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(f).drop_columns(["observation.qvel"]), f)
    with pytest.raises(wd.DatasetError, match=rf"{f}: column 'observation.qvel' missing"):
        wd.load(bad)
    wd.load(bad, columns=["action"])  # what is not asked for is not needed
    with pytest.raises(ValueError, match="contains '/'"):
        wd.DatasetWriter(tmp_path / "w", features={"a/b": layout.feature("float32", 1)}, fps=1, robot_type=None,
                         task="t", episode_columns={}, worldloop={})  # fmt: skip
    with pytest.raises(wd.DatasetError, match="already holds a dataset"):
        wd.collect(LIFT, out, episodes=1, num_envs=1, backend="mujoco", progress=None)
    with pytest.raises(wd.DatasetError, match=r"worldloop\.task_config\.action_space is 'ee_pos'"):
        wd.collect(LIFT, out, episodes=5, num_envs=1, backend="mujoco", resume=True, progress=None,
                   action_space="joint_pos")  # fmt: skip


def test_set_state_restores_envs_and_checks_input():
    env = worldloop.make(LIFT, num_envs=3, backend="mujoco", seed=1)
    env.reset()
    for _ in range(5):
        env.step(env.task.expert())
    q, v = env.qpos.clone(), env.qvel.clone()
    other = worldloop.make(LIFT, num_envs=3, backend="mujoco", seed=2)
    other.reset()
    before = other.qpos[1].clone()
    obs = other.set_state(q[[0, 2]], v[[0, 2]], env_ids=torch.tensor([0, 2]))
    assert torch.equal(other.qpos[[0, 2]], q[[0, 2]]) and torch.equal(other.qvel[[0, 2]], v[[0, 2]])
    assert torch.equal(other.qpos[1], before)
    assert other.episode_length_buf.tolist() == [0, 0, 0] and obs["policy"].shape == (3, 36)
    with pytest.raises(ValueError, match=r"qpos must have shape \(len\(env_ids\), nq\) = \(2, 16\)"):
        other.set_state(q, v, env_ids=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="NaN"):
        other.set_state(q * float("nan"), v)
    with pytest.raises(ValueError, match="env_ids must be in 0..2"):
        other.set_state(q[:1], v[:1], env_ids=torch.tensor([3]))
    env.close()
    other.close()


def test_progress_writes_plain_lines_off_a_terminal():
    import io

    stream = io.StringIO()
    p = Progress(10, initial=2, desc=LIFT, stream=stream, every_s=0.0)
    p.update(5, 1000)
    p.close("done")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[worldloop] collect Franka-Lift-v0: 5/10 episodes, 1,000 frames")
    assert "frames/s" in lines[0] and "ETA" in lines[0] and "\r" not in stream.getvalue()
    assert lines[-1] == "done"


def _complete_episodes_only(path: Path, length: int) -> int:
    ds = wd.load(path, task=LIFT)
    assert (ds.episodes["length"] == length).all()
    done = ds.frames["next.done"]
    assert int(done.sum()) == ds.num_episodes and (ds.num_episodes == 0 or bool(done[-1]))
    assert torch.equal(ds.frames["index"], torch.arange(ds.num_frames))
    return ds.num_episodes


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path):
    """Killed up to 5 times at random moments (until it is complete), the dataset always loads with
    complete episodes only, and ``--resume`` finishes it."""
    out = tmp_path / "lift"
    episodes, steps = 120, 10  # 0.2 s episodes at 50 Hz
    cmd = [sys.executable, "-m", "worldloop.scripts.collect", "--out", str(out), "--episodes", str(episodes),
           "--commit-interval-s", "0", "--file-size-mb", "1"]  # fmt: skip
    first = [*cmd, "--task", LIFT, "--num-envs", "4", "--backend", "mujoco", "--env.episode-length-s", "0.2"]
    rng = random.Random(0)
    counts = []
    info = out / "meta/info.json"
    for i in range(5):
        before = info.stat().st_mtime_ns if info.exists() else None
        p = subprocess.Popen(first if i == 0 else [*cmd, "--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.time()
        # The writer (re)writes info.json once it holds the directory: from then on it is collecting.
        while (not info.exists() or info.stat().st_mtime_ns == before) and time.time() - t0 < 60:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
        counts.append(_complete_episodes_only(out, steps))
        if counts[-1] == episodes:  # a fast machine can finish before a kill lands
            break
    r = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert _complete_episodes_only(out, steps) == episodes
    assert not list(out.rglob("*.tmp"))
    assert counts == sorted(counts) and counts[0] < episodes  # nothing committed is ever lost
    print("episodes at each kill:", counts)
    seeds = wd.load(out).episodes["seed"].unique().tolist()
    assert seeds[0] == 0 and len(seeds) >= 2  # each resumed process continues with a new seed
    os.sync()


NEWTON_REPLAY_ATOL = 1e-4
"""[m] replay of a newton episode on newton: measured 0 on the CPU (Warp's CPU kernels run in a fixed
order); the bound leaves room for GPU atomics summing in another order."""
CROSS_BACKEND_ATOL = 2e-3
"""[m] the same episode replayed on mujoco (float64) instead of newton (float32): measured 6.6e-5."""


@pytest.mark.newton
def test_replay_reproduces_a_newton_episode(tmp_path):
    pytest.importorskip("newton")
    pytest.importorskip("mujoco_warp")
    # 1.5 s of the expert: reach, descend, grasp and lift off (the full 5 s episode replays the same way).
    wd.collect(LIFT, tmp_path / "n", episodes=2, num_envs=2, backend="newton", seed=3, progress=None,
               episode_length_s=1.5)  # fmt: skip
    ds = wd.load(tmp_path / "n", task=LIFT)
    assert ds.episodes["backend"] == ["newton", "newton"]
    assert float(wd.replay(ds, [0, 1]).max_error("cube_joint").max()) < NEWTON_REPLAY_ATOL
    assert float(wd.replay(ds, [0], backend="mujoco").max_error("cube_joint").max()) < CROSS_BACKEND_ATOL


def test_readme_datasets_snippet_runs(lift):
    """The README's "Datasets" section reads a dataset back as written (on the module's dataset)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Datasets\n", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in code.splitlines() if line.strip()]) <= 5
    scope: dict = {}
    exec(code.replace("datasets/lift_expert", str(lift[0])), scope)
    assert scope["ep"]["observation.state"].shape == (250, 36) and scope["ep"]["action"].shape == (250, 5)
    assert scope["batch"]["observation.state"].shape == (256, 8, 36)


def test_one_env_commits_on_the_writer_thread_keep_their_frames(tmp_path):
    """With one env an episode's rows can alias the episode buffer; what a background commit writes
    is still what was stepped (against a rerun with the same seed)."""
    task = "Franka-Reach-v0"
    wd.collect(task, tmp_path / "r", episodes=3, num_envs=1, backend="mujoco", seed=5, commit_interval_s=0,
               progress=None, episode_length_s=0.5)  # fmt: skip
    ds = wd.load(tmp_path / "r")
    env = worldloop.make(task, num_envs=1, backend="mujoco", seed=5, episode_length_s=0.5)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        env.reset()
        T = 3 * env.max_episode_length
        r = next(Loop(env, lambda obs: env.task.expert()).run(T, chunk=T))
    finally:
        torch.set_num_threads(threads)
        env.close()
    assert torch.equal(ds.frames["observation.qpos"], r.qpos[:, 0])
    assert torch.equal(ds.frames["action"], r.actions[:, 0])


def test_collect_with_a_trained_runs_policy(tmp_path):
    """``--policy RUN_DIR@CHECKPOINT``: the run's env and actor, composed in the scripts layer."""
    from worldloop.policies.run_dir import ConfigError
    from worldloop.scripts import collect as collect_cli
    from worldloop.scripts import train as train_cli

    train_cli.main(["--task", "Cartpole-v0", "--num-envs", "16", "--max-iterations", "1", "--eval-episodes", "16",
                    "--log-root", str(tmp_path), "--agent.num-steps-per-env", "8",
                    "--env.episode-length-s", "1.0"])  # fmt: skip
    (run,) = (tmp_path / "Cartpole-v0").iterdir()
    out = tmp_path / "ds"
    policy = f"{run}@last"
    s = collect_cli.main(["--policy", policy, "--episodes", "6", "--num-envs", "4", "--out", str(out)])
    assert s["episodes"] == 6
    ds = wd.load(out, task="Cartpole-v0")
    assert ds.info["worldloop"]["policy"] == policy
    assert ds.info["worldloop"]["task_config"]["episode_length_s"] == 1.0  # the run's config
    s = collect_cli.main(["--out", str(out), "--resume", "--episodes", "8"])  # the run's policy again
    assert s["episodes"] == 8 and wd.load(out).episodes["seed"].unique().numel() == 2
    with pytest.raises(ConfigError, match="run's config"):
        collect_cli.main(["--policy", policy, "--out", str(tmp_path / "x"), "--rand", "pole_mass=off"])
    with pytest.raises(ConfigError, match="--task is required"):
        collect_cli.main(["--out", str(tmp_path / "y")])


def test_action_noise_perturbs_the_executed_actions_by_its_std(tmp_path):
    """``--action-noise 0.1`` (DART): from the same seeded reset states, each episode's first executed action
    differs from the noiseless expert's by Gaussian noise of std 0.1; a resume with another std is refused."""
    from worldloop.scripts import collect as collect_cli

    common = ["--task", "Franka-Reach-v0", "--episodes", "32", "--num-envs", "32", "--seed", "3"]
    collect_cli.main([*common, "--out", str(tmp_path / "clean")])
    collect_cli.main([*common, "--out", str(tmp_path / "noisy"), "--action-noise", "0.1"])
    clean, noisy = wd.load(tmp_path / "clean"), wd.load(tmp_path / "noisy")
    assert noisy.info["worldloop"]["action_noise"] == 0.1 and clean.info["worldloop"]["action_noise"] == 0.0
    first_clean = clean.frames["action"][clean.frames["frame_index"] == 0]
    first_noisy = noisy.frames["action"][noisy.frames["frame_index"] == 0]
    assert torch.equal(clean.frames["observation.state"][clean.frames["frame_index"] == 0],
                       noisy.frames["observation.state"][noisy.frames["frame_index"] == 0])  # fmt: skip
    inside = first_clean.abs() < 0.7  # away from the clip at +-1
    diff = (first_noisy - first_clean)[inside]
    assert diff.numel() > 100
    assert 0.08 < float(diff.std()) < 0.12 and abs(float(diff.mean())) < 0.03, (diff.std(), diff.mean())
    with pytest.raises(wd.DatasetError, match="action_noise is 0.1, this collection's is 0.2"):
        wd.collect("Franka-Reach-v0", tmp_path / "noisy", episodes=40, num_envs=8, resume=True, action_noise=0.2,
                   progress=None)  # fmt: skip
    with pytest.raises(ValueError, match="action_noise must be a finite std >= 0"):
        wd.collect("Franka-Reach-v0", tmp_path / "bad", episodes=4, action_noise=-0.1, progress=None)


def test_compare_throughput_alternates_loop_and_collection():
    from worldloop.data.bench import compare_throughput

    r = compare_throughput("Cartpole-v0", num_envs=16, rounds=2, episodes_per_env=1, policy="random")
    assert len(r["loop_frames_per_s"]) == len(r["collect_frames_per_s"]) == 2
    assert r["ratio"] > 0 and r["bytes_per_round"] > 0 and r["rss_mib_at_commits"]
