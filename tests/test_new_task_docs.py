"""docs/new_task.md works exactly as written: its file blocks are the example file, and its
commands and snippets run, from a directory outside the package, with a tiny training budget."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "new_task.md"
EXAMPLE = ROOT / "docs" / "examples" / "my_reach_task.py"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
TINY = ["--num-envs", "16", "--max-iterations", "2", "--agent.num-steps-per-env", "8", "--eval-episodes", "16"]


def blocks(info: str) -> list[str]:
    """Contents of the page's fenced blocks whose info string is ``info``."""
    return [body for tag, body in FENCE.findall(PAGE.read_text()) if tag.strip() == info]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r


def test_page_shows_the_whole_example_file_and_it_is_short():
    text = EXAMPLE.read_text()
    assert "".join(blocks("python my_reach_task.py")) == text, "the page's file blocks drifted from the example"
    assert len(text.splitlines()) <= 150


def test_try_it_snippet_runs_outside_the_package(tmp_path):
    shutil.copy(EXAMPLE, tmp_path)
    snippet = blocks("python")[0]
    (tmp_path / "try_it.py").write_text(snippet)
    out = run([sys.executable, "try_it.py"], tmp_path).stdout
    assert "expert success: 1.0" in out and "reach_fine" in out


@pytest.mark.slow
def test_train_and_play_commands_run_as_written(tmp_path):
    """Every command of the page, each training one with a tiny budget appended."""
    shutil.copy(EXAMPLE, tmp_path)
    commands = [line.split() for block in blocks("bash") for line in block.splitlines() if line.strip()]
    assert any(c[2:3] == ["train"] for c in commands)
    for cmd in commands:
        assert cmd[:2] == ["python", "my_reach_task.py"], cmd
        extra = TINY + ["--log-root", "runs"] if cmd[2] == "train" else []
        out = run([sys.executable, *cmd[1:], *extra], tmp_path).stdout
        if cmd[2] == "list":
            assert "My-Reach-v0" in out and "Franka-Lift-v0" in out
    (run_dir,) = (tmp_path / "runs" / "My-Reach-v0").iterdir()
    assert list(run_dir.glob("model_*.pt")) and (run_dir / "eval.json").is_file()
    # The page's play command, on the run just made.
    (play,) = [p for p in re.findall(r"`(python my_reach_task.py play [^`]*)`", PAGE.read_text())]
    cmd = play.replace("runs/My-Reach-v0/<date_time>", str(run_dir)).split()
    run([sys.executable, *cmd[1:], "--episodes", "16"], tmp_path)


@pytest.mark.slow
def test_python_training_snippet_runs(tmp_path):
    shutil.copy(EXAMPLE, tmp_path)
    (snippet,) = [b for b in blocks("python") if "TrainCfg" in b]
    budget = 'num_envs=16, max_iterations=2, eval_episodes=16, log_root="runs", agent=PPOCfg(num_steps_per_env=8)'
    tiny = snippet.replace("num_envs=256, max_iterations=150", budget)
    assert tiny != snippet, "the page's train() call changed; update this test's budget substitution"
    (tmp_path / "train_it.py").write_text("from worldloop.policies.ppo import PPOCfg\n" + tiny + "print(summary)\n")
    out = run([sys.executable, "train_it.py"], tmp_path).stdout
    assert "success_rate" in out
