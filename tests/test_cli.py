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


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in (ROOT / "README.md").read_text()
