"""The README's Python blocks run as written, and the shapes their comments state are the real ones."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def block(marker: str) -> str:
    """The README's one Python block containing ``marker``."""
    (found,) = [b for b in FENCE.findall((ROOT / "README.md").read_text()) if marker in b]
    return found


def test_every_python_block_is_checked_here():
    markers = ("worldloop.make(", "import gymnasium", "register_task", "worldloop.data.load(")
    assert len(FENCE.findall((ROOT / "README.md").read_text())) == len(markers)
    for m in markers:
        block(m)


def test_quick_start_runs_and_states_the_observation_shape():
    code = block("worldloop.make(")
    ns: dict = {}
    exec(compile(code, "README.md:quick start", "exec"), ns)
    env = ns["env"]
    n_obs = int(re.search(r"\(num_envs, (\d+)\)", code).group(1))
    obs, _ = env.reset()
    assert tuple(obs["policy"].shape) == tuple(obs["critic"].shape) == (env.num_envs, n_obs)
    env.close()


def test_gymnasium_block_runs_and_steps():
    ns: dict = {}
    exec(compile(block("import gymnasium"), "README.md:gymnasium", "exec"), ns)
    env, one = ns["env"], ns["one"]
    obs, _ = env.reset(seed=0)
    assert obs.shape == (env.num_envs, *env.single_observation_space.shape)
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert reward.shape == terminated.shape == truncated.shape == (env.num_envs,)
    one.reset(seed=0)
    assert one.step(one.action_space.sample())[0].shape == env.single_observation_space.shape
    assert one.render().ndim == 3
    env.close()
    one.close()


def test_task_registration_block_registers_its_task(tmp_path):
    check = "import worldloop\nprint('My-Reach-v0' in [s.id for s in worldloop.list_tasks()])\n"
    code = block("register_task") + "\n" + check
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.split()[-1] == "True", r.stderr[-3000:]


def test_dataset_block_runs_and_states_the_episode_shapes(tmp_path, monkeypatch):
    from worldloop.data import collect

    monkeypatch.chdir(tmp_path)
    collect("Franka-Lift-v0", "datasets/lift_expert", episodes=2, policy="expert", num_envs=2, progress=None)
    code = block("worldloop.data.load(")
    ns: dict = {}
    exec(compile(code, "README.md:datasets", "exec"), ns)
    line = next(line for line in code.splitlines() if "ds.episode(0)" in line)
    stated = re.findall(r'"([\w.]+)": \(([\d, ]+)\)', line)
    assert len(stated) >= 3, line
    for key, dims in stated:
        assert tuple(ns["ep"][key].shape) == tuple(int(d) for d in dims.split(",") if d.strip()), key
    assert tuple(ns["batch"]["action"].shape[:2]) == (256, 8)
