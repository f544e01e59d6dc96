"""The command line, run as a user runs it: real rsl-rl runner, real tensorboard files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worldloop.scripts.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=check,
        timeout=600,
    )


def test_list_prints_registered_tasks():
    out = run("list").stdout
    assert "Franka-Reach-v0" in out and "Cartpole-v0" in out


def test_unknown_command_and_task_are_refused():
    r = run("trian", check=False)
    assert r.returncode != 0 and "trian" in r.stderr and "train" in r.stderr
    r = run("train", "--task", "Nope-v0", check=False)
    assert r.returncode != 0 and "Nope-v0" in r.stderr and "Franka-Reach-v0" in r.stderr


def test_train_help_documents_every_option():
    out = run("train", "--help").stdout
    for flag, doc in [
        ("--num-envs", "Envs stepped together"),
        ("--agent.learning-rate", "Adam learning rate"),
        ("--env.episode-length-s", "episodes are truncated"),
    ]:
        assert flag in out and doc in out


@pytest.mark.slow
def test_train_smoke_writes_a_complete_run(tmp_path):
    """A tiny budget through the real OnPolicyRunner: checkpoints, tensorboard, config, eval."""
    r = run(
        "train",
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
        "--env.episode-length-s",
        "2.0",
        cwd=tmp_path,
    )
    assert "success" in r.stdout
    (run_dir,) = (tmp_path / "Cartpole-v0").iterdir()
    assert list(run_dir.glob("model_*.pt"))
    events = list(run_dir.glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "Loss/surrogate" in tags and "Episode/return" in tags and "Episode_Reward/upright" in tags
    assert "Randomization/pole_mass_low" in tags and "Perf/collection_time" in tags
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["env"]["episode_length_s"] == 2.0 and cfg["train"]["num_envs"] == 32
    ev = json.loads((run_dir / "eval.json").read_text())
    assert ev["episodes"] == 32 and 0.0 <= ev["success_rate"] <= 1.0
    # The learning curve as a table, read back from the same event file.
    from worldloop.scripts.curve import read_curve

    rows = read_curve(run_dir)
    assert [r["it"] for r in rows] == [0, 1, 2]
    returns = acc.Scalars("Episode/return")
    assert [r["return"] for r in rows if "return" in r] == pytest.approx([e.value for e in returns])
    assert all(0.0 <= r["minutes"] < 5.0 for r in rows)
    table = run("curve", "--run", str(run_dir), "--every", "1", "--target", "2.0").stdout
    assert len(table.splitlines()) == 1 + 3 + 1 and "never reached 200%" in table


def test_bench_reports_ratio_to_raw_physics():
    r = run("bench", "--task", "Cartpole-v0", "--num-envs", "16", "--steps", "20", "--json")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["env_steps_per_s"] > 0 and res["raw_physics_steps_per_s"] > 0
    assert res["ratio_to_raw"] == pytest.approx(res["physics_steps_per_s"] / res["raw_physics_steps_per_s"])
    # 20 steps in the default 4 rounds: each round's ratio is timed on its own, the total lies within them.
    per_round = res["ratio_per_round"]
    assert len(per_round) == 4 and min(per_round) <= res["ratio_to_raw"] * (1 + 1e-9)
    assert max(per_round) >= res["ratio_to_raw"] * (1 - 1e-9)


def test_bench_randomization_overhead_prints_a_line_or_json():
    args = ("bench", "--task", "Cartpole-v0", "--num-envs", "8", "--steps", "5", "--repeats", "2")
    args += ("--randomization-overhead",)
    text = run(*args).stdout.strip().splitlines()[-1]
    res = json.loads(run(*args, "--json").stdout.strip().splitlines()[-1])
    assert text.startswith("Cartpole-v0 on mujoco, 8 envs, terms ") and "env-steps/s with them" in text
    assert res["terms"] and res["env_steps_per_s_with"] > 0 and res["env_steps_per_s_without"] > 0


def test_bench_suite_prints_one_row_per_task():
    out = run("bench", "--suite", "--tasks", "Cartpole-v0", "Franka-Reach-v0", "--num-envs", "8", "--steps", "5").stdout
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| task | decimation | env-steps/s")
    assert [r.split(" | ")[0].strip("| ") for r in rows[1:]] == ["Cartpole-v0", "Franka-Reach-v0"]
    for r in rows[1:]:
        # The ratio is the physics steps/s over the raw replay's, both timed: how large it is depends on the
        # machine's load (tests run two at a time), so check the columns agree rather than bound it.
        physics, raw, ratio = (float(c.replace(",", "")) for c in r.split(" | ")[3:6])
        assert physics > 0 and raw > 0 and ratio == pytest.approx(physics / raw, abs=0.006)
        lo, hi = (float(x) for x in r.split(" | ")[6].split("-"))
        assert lo <= hi


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in (ROOT / "README.md").read_text()


def test_dict_fields_are_options_that_reach_the_env():
    """Reward weights and randomization terms are ordinary options (`_` or `-` in names)."""
    import worldloop
    from worldloop.scripts.train import parse

    cfg = parse(
        ["--task", "Franka-Lift-v0", "--env.weights.lift", "8", "--env.weights.goal-fine", "6"]
        + ["--env.randomization.object_mass.range", "0.5", "2.0", "--env.randomization.joint-damping.dist", "uniform"]
        + ["--num_envs", "4", "--agent.learning_rate", "3e-4"]
    )
    assert cfg.num_envs == 4 and cfg.agent.learning_rate == 3e-4
    env = worldloop.make(cfg.task, num_envs=2, backend="mujoco", cfg=cfg.env)
    try:
        assert env.cfg.weights["lift"] == 8.0 and env.cfg.weights["goal_fine"] == 6.0
        assert env.cfg.weights["reach"] == 1.0  # the other weights keep the task's values
        assert env.cfg.randomization["joint_damping"].dist == "uniform"
        assert env.randomizer.ranges()["object_mass"] == pytest.approx((0.5, 2.0))
    finally:
        env.close()


def test_rand_shorthand_adds_and_drops_terms_before_the_options():
    from worldloop.envs.randomization import RandTerm
    from worldloop.scripts.train import parse

    cfg = parse(
        ["--task", "Franka-Lift-v0", "--rand", "obs_noise=off", "--rand", "cube_mass.kind=body_mass"]
        + ["--rand", "cube_mass.targets=cube", "--rand=cube_mass.range=0.5,2"]
        + ["--env.randomization.cube_mass.range", "0.6", "1.5"]
    )
    assert "obs_noise" not in cfg.env.randomization
    assert cfg.env.randomization["cube_mass"] == RandTerm(kind="body_mass", targets="cube", range=(0.6, 1.5))


def test_help_lists_the_choices_of_literal_fields():
    out = run("train", "--task", "Franka-Lift-v0", "--help").stdout
    assert "--env.action-space {joint_pos,joint_delta,ee_delta,ee_pos}" in out
    assert "--backend {auto,mujoco,newton,isaaclab}" in out and "--env.weights.lift FLOAT" in out
    assert "--env.randomization.object-mass.range FLOAT FLOAT" in out and "--rand" in out


def test_unknown_option_and_bad_input_are_refused_clearly():
    r = run("train", "--task", "Cartpole-v0", "--agent.learnin-rate", "1e-3", check=False)
    assert r.returncode != 0 and "--agent.learnin-rate" in r.stderr and "--agent.learning-rate" in r.stderr
    assert "Traceback" not in r.stderr
    r = run("train", "--task", "Cartpole-v0", "--backend", "bullet", check=False)
    assert r.returncode != 0 and "bullet" in r.stderr and "mujoco" in r.stderr
    r = run("train", "--task", "Cartpole-v0", "--rand", "pole_mass.rnage=1,2", check=False)
    assert r.returncode != 0 and "rnage" in r.stderr and "range" in r.stderr and "Traceback" not in r.stderr


def test_zero_or_negative_budgets_and_bad_values_are_refused_in_one_line(tmp_path, monkeypatch):
    """No default replaces a 0, and a ValueError is one line on the command line, not a traceback."""
    from worldloop.scripts.cli import main

    base = ["train", "--task", "Cartpole-v0", "--log-root", str(tmp_path)]
    cases = [
        (["--num-envs", "0"], "--num-envs"),
        (["--num-envs", "-5"], "--num-envs"),
        (["--max-iterations", "0"], "--max-iterations"),
        (["--env.episode-length-s", "-1"], "episode_length_s"),
        (["--env.scene", "nope.xml"], "nope.xml"),
        (["--agent.learning-rate", "-1"], "--agent.learning-rate"),
        (["--agent.gamma", "1.5"], "--agent.gamma"),
    ]
    for args, words in cases:
        with pytest.raises(SystemExit) as e:
            main([*base, *args])
        msg = str(e.value.code)
        assert msg.startswith("worldloop train: error:") and words in msg and "\n" not in msg, (args, msg)
    assert not (tmp_path / "Cartpole-v0").exists()  # refused before any run directory was written
    r = run(*base, "--num-envs", "0", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    monkeypatch.setenv("WORLDLOOP_DEBUG", "1")  # shows the traceback
    with pytest.raises(ValueError, match="num_envs"):
        main([*base, "--num-envs", "0"])


def test_unknown_ppo_key_in_train_defaults_names_the_fields(monkeypatch):
    from worldloop.envs.task import TrainDefaults
    from worldloop.scripts.train import parse
    from worldloop.tasks import get_task

    monkeypatch.setattr(get_task("Cartpole-v0").task_cls, "train_defaults", TrainDefaults(agent={"learning_rte": 1}))
    with pytest.raises(KeyError, match=r"Cartpole-v0.*learning_rte.*learning_rate"):
        parse(["--task", "Cartpole-v0"])


def test_config_json_round_trip_and_checkpoints(tmp_path):
    """The run directory's config reads back as the dataclasses it was written from."""
    from worldloop.envs.randomization import RandTerm
    from worldloop.policies import run_dir
    from worldloop.policies.train import TrainCfg, train
    from worldloop.scripts.train import parse

    cfg = parse(
        ["--task", "Franka-Lift-v0", "--env.weights.lift", "8", "--agent.actor-hidden-dims", "64", "32"]
        + ["--rand", "pads.kind=geom_friction", "--rand", "pads.targets=.*pad.*", "--rand", "pads.range=0.5,1.5"]
        + ["--rand", "pads.components=0", "--rand", "pads.max_range=0.2,2", "--env.start-grip-pos", "None"]
    )
    path = run_dir.write_config(tmp_path / "run", cfg, backend="mujoco")
    saved = json.loads(path.read_text())
    assert set(saved) == {"train", "env", "agent", "backend"} and saved["env"]["weights"]["lift"] == 8.0
    back = run_dir.read_config(tmp_path / "run")
    assert back == cfg and type(back.env) is type(cfg.env)
    assert all(isinstance(t, RandTerm) for t in back.env.randomization.values())
    assert back.env.randomization["pads"].components == (0,) and back.env.randomization["pads"].max_range == (0.2, 2.0)
    assert back.agent.actor_hidden_dims == (64, 32) and back.env.start_grip_pos is None
    # Resuming may change the budget only.
    assert TrainCfg.from_run(tmp_path / "run").resume == str(tmp_path / "run")
    with pytest.raises(run_dir.ConfigError, match="num_envs"):
        train(TrainCfg.from_run(tmp_path / "run", num_envs=3))
    r = run("train", "--resume", str(tmp_path / "run"), "--env.weights.lift", "9", check=False)
    assert r.returncode != 0 and "env" in r.stderr and "max_iterations" in r.stderr
    # A field the code does not know is named with the file.
    saved["env"]["lift_hieght"] = 0.1
    path.write_text(json.dumps(saved))
    with pytest.raises(run_dir.ConfigError, match=r"config.json.*lift_hieght"):
        run_dir.read_config(tmp_path / "run")
    # Checkpoints by name.
    for name in ("model_0.pt", "model_10.pt", "model_2.pt"):
        (tmp_path / "run" / name).write_bytes(b"")
    assert run_dir.find_checkpoint(tmp_path / "run", "last").name == "model_10.pt"
    assert run_dir.find_checkpoint(tmp_path / "run", "best").name == "model_10.pt"
    (tmp_path / "run" / "best.pt").write_bytes(b"")
    assert run_dir.find_checkpoint(tmp_path / "run", "best").name == "best.pt"
    assert run_dir.find_checkpoint(tmp_path / "run", "model_2.pt").name == "model_2.pt"
    with pytest.raises(run_dir.CheckpointError, match="model_3.pt.*model_10.pt"):
        run_dir.find_checkpoint(tmp_path / "run", "model_3.pt")


def test_resume_with_a_new_budget_keeps_it_and_names_refused_fields(tmp_path):
    """``--resume RUN --max-iterations N`` makes N the run's budget: a later plain ``--resume`` goes on to N
    (it used to fall back to the first budget and train nothing); other changes are refused by field."""
    tiny = ["--num-envs", "8", "--agent.num-steps-per-env", "8", "--eval-episodes", "0", "--log-root", str(tmp_path)]
    run("train", "--task", "Cartpole-v0", "--max-iterations", "1", *tiny, cwd=tmp_path)
    (run_dir,) = (tmp_path / "Cartpole-v0").iterdir()
    run("train", "--resume", str(run_dir), "--max-iterations", "3", cwd=tmp_path)
    assert json.loads((run_dir / "config.json").read_text())["train"]["max_iterations"] == 3
    r = run("train", "--resume", str(run_dir), "--env.episode-length-s", "1.5", check=False)
    assert r.returncode != 0 and "env.episode_length_s" in r.stderr and "Traceback" not in r.stderr
