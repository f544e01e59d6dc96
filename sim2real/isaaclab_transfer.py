"""Transfer to Isaac Lab: a worldloop run's policy evaluated on the Isaac Lab task that poses the same
problem with the same observation and action layout (its *counterpart*).

    evaluate_on_isaaclab("runs/Cartpole-v0/<date_time>", episodes=200)   # in the Isaac Lab environment or not

Isaac Lab 3.0 needs Python 3.12 and its own environment (README, "Isaac Lab backend"). Where this
process cannot import Isaac Lab, the evaluation runs in that environment as a subprocess
(``python -m worldloop.sim2real.isaaclab_transfer '<json kwargs>'``, which prints one JSON object):
``$WORLDLOOP_ISAACLAB_ENV``, else ``.venv-isaaclab`` in the worldloop checkout, as ``.ci/run`` finds it.
The subprocess imports the same worldloop checkout as the caller.

The counterpart runs on worldloop's stand-in USD assets (``worldloop isaaclab-assets``, written to a
temporary folder), so the robot is the run's own MJCF robot inside Isaac Lab's task, physics and
managers; the stand-ins are what make the action units agree (:data:`COUNTERPARTS`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldloop.envs.isaaclab.env import SETUP
from worldloop.envs.loop import run_episodes
from worldloop.policies import run_dir
from worldloop.sim2real.common import episode_stats

ENV_VAR = "WORLDLOOP_ISAACLAB_ENV"
"""Environment variable naming the Isaac Lab environment folder (default ``.venv-isaaclab`` in the checkout)."""


@dataclass(frozen=True, kw_only=True)
class Counterpart:
    """The Isaac Lab task a worldloop task's policy is evaluated on."""

    task: str
    """worldloop id of the Isaac Lab task (``isaaclab:<Isaac Lab id>``)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Fields of its :class:`~worldloop.envs.isaaclab.env.IsaacLabCfg` set for the transfer."""
    note: str = ""
    """What is the same and what differs, for the report."""


COUNTERPARTS: dict[str, Counterpart] = {
    "Cartpole-v0": Counterpart(
        task="isaaclab:Isaac-Cartpole-v0",
        overrides={"action_clip": 1.0},  # Cartpole-v0's actuator takes [-1, 1]; Isaac Lab does not clip
        note=(
            "Isaac Lab's Isaac-Cartpole on worldloop's stand-in cart-pole (Cartpole-v0's MJCF, masses x5, so Isaac "
            "Lab's 100 N action scale is the same push per action unit as Cartpole-v0's 20 N motor); same "
            "observation [x, theta, x_dot, theta_dot] and action, actions clipped to +-1 as on Cartpole-v0. Isaac "
            "Lab's episodes differ: 5 s (300 steps at 60 Hz; Cartpole-v0: 10 s at 50 Hz), resets of the cart within "
            "+-1 m and +-0.5 m/s and the pole within +-45 deg and +-45 deg/s (Cartpole-v0: +-0.05 on each state), "
            "and only the cart leaving +-3 m ends one early (Cartpole-v0: |theta| > 0.4 rad or |x| > 2.4 m). "
            "Success on both: the pole within 0.2 rad of upright at the episode's end. The return is "
            "Isaac Lab's reward (other terms and scale), so no return drop is given."
        ),
    ),
}
"""worldloop task id -> its Isaac Lab counterpart."""

NO_COUNTERPART: dict[str, str] = {
    "Franka-Reach-v0": (
        "Isaac-Reach-Franka's layouts do not map onto Franka-Reach-v0's: it observes 32 values (9 joint positions "
        "and 9 velocities with the fingers, a 7-value pose command with orientation, the last action) where "
        "Franka-Reach-v0 observes 34 (7 arm joints, their velocities, the joint-command error, the target and "
        "target-minus-grip positions, the last action); its actions are joint positions about the default pose "
        "(scale 0.5 rad), Franka-Reach-v0's are joint-target steps of 0.05 rad; and its success needs the hand's "
        "orientation within 0.2 rad of a commanded one, which Franka-Reach-v0 never asks for"
    ),
}
"""worldloop tasks that look like an Isaac Lab task but cannot be evaluated on it, and why."""


class IsaacLabEvalError(RuntimeError):
    """The evaluation in the Isaac Lab environment failed (the message holds the end of its output)."""


def counterpart(task: str) -> Counterpart | None:
    """The Isaac Lab counterpart of worldloop task ``task``, or ``None``."""
    return COUNTERPARTS.get(task)


def no_counterpart_reason(task: str) -> str:
    """Why ``task`` has no Isaac Lab counterpart (the tasks that have one are named)."""
    have = ", ".join(f"{k} -> {v.task}" for k, v in COUNTERPARTS.items())
    return NO_COUNTERPART.get(task, f"no Isaac Lab task is mapped to {task}") + f" (counterparts: {have})"


def isaaclab_here() -> bool:
    """Whether this process can import Isaac Lab (Python 3.12 with ``isaaclab_tasks`` installed)."""
    return sys.version_info >= (3, 12) and importlib.util.find_spec("isaaclab_tasks") is not None


def checkout() -> Path:
    """The folder the ``worldloop`` package is imported from (the checkout, for an editable install)."""
    import worldloop

    return Path(worldloop.__file__).resolve().parent


def isaaclab_python() -> Path | None:
    """The Python of the Isaac Lab environment (``$WORLDLOOP_ISAACLAB_ENV``, else ``.venv-isaaclab`` in the
    checkout) if it exists and has Isaac Lab installed, else ``None``."""
    folder = Path(os.environ.get(ENV_VAR) or checkout() / ".venv-isaaclab")
    python = folder / "bin" / "python"
    if not (python.is_file() and os.access(python, os.X_OK)):
        return None
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('isaaclab_tasks') is None)"
    try:
        ok = subprocess.run([str(python), "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return None
    return python if ok else None


def isaaclab_available() -> bool:
    """Whether :func:`evaluate_on_isaaclab` can run: Isaac Lab here, or an Isaac Lab environment found."""
    return isaaclab_here() or isaaclab_python() is not None


def setup_hint() -> str:
    """How to create the Isaac Lab environment, for ``not_installed`` entries."""
    return f"in the worldloop checkout: {SETUP} (or set {ENV_VAR} to such an environment's folder)"


def evaluate_counterpart(
    run: str | Path,
    *,
    checkpoint: str = "best",
    episodes: int = 200,
    num_envs: int | None = None,
    seed: int = 0,
    device: str | None = None,
) -> dict:
    """Evaluate ``run``'s policy on its task's Isaac Lab counterpart, in this process (needs Isaac Lab).

    Returns:
        ``{"task", "note", "num_envs", "episodes", "successes", "success_rate", "success_ci95",
        "mean_return", "return_ci95", "mean_length" [policy steps], "seconds"}`` (as :func:`transfer`'s rows;
        the return is the counterpart's reward).

    Raises:
        ValueError: the run's task has no counterpart (the message says why), or ``episodes``/``num_envs`` < 1.
        ImportError: Isaac Lab is not installed here.
        CheckpointError: no such checkpoint.
    """
    from worldloop.envs.isaaclab.usd_assets import write_assets
    from worldloop.policies.train import inference_policy, load_run
    from worldloop.tasks import make

    t0 = time.perf_counter()
    cfg = run_dir.read_config(run)
    cp = counterpart(cfg.task)
    if cp is None:
        raise ValueError(f"{run}: {no_counterpart_reason(cfg.task)}")
    num_envs = min(episodes, 1024) if num_envs is None else num_envs
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"episodes and num_envs must be >= 1, got {episodes} and {num_envs}")
    run_dir.find_checkpoint(run, checkpoint)
    with tempfile.TemporaryDirectory(prefix="worldloop_isaaclab_assets_") as assets:
        write_assets(assets, franka=False)
        env = make(cp.task, num_envs=num_envs, device=device or cfg.device, seed=seed, asset_root=assets,
                   **cp.overrides)  # fmt: skip
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # rsl-rl prints the model at construction
                _, runner = load_run(run, checkpoint=checkpoint, env=env)
            env.reset(seed=seed)
            eps = run_episodes(env, inference_policy(runner, num_envs), episodes)
        finally:
            env.close()
    stats = episode_stats(eps)
    stats["mean_length"] = float(eps.lengths.double().mean())
    return {"task": cp.task, "note": cp.note, "num_envs": num_envs, **stats,
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def evaluate_on_isaaclab(run: str | Path, **kwargs: Any) -> dict:
    """:func:`evaluate_counterpart` here if Isaac Lab imports, else in the Isaac Lab environment
    (:func:`isaaclab_python`) as a subprocess; same arguments and result.

    Raises:
        ValueError: the run's task has no counterpart.
        FileNotFoundError: no Isaac Lab here and no Isaac Lab environment (the message says how to create it).
        IsaacLabEvalError: the subprocess failed (the message holds the end of its output).
    """
    cfg = run_dir.read_config(run)
    if counterpart(cfg.task) is None:
        raise ValueError(f"{run}: {no_counterpart_reason(cfg.task)}")
    if isaaclab_here():
        return evaluate_counterpart(run, **kwargs)
    python = isaaclab_python()
    if python is None:
        where = os.environ.get(ENV_VAR) or checkout() / ".venv-isaaclab"
        raise FileNotFoundError(f"no Isaac Lab environment at {where}: create it {setup_hint()}")
    with tempfile.TemporaryDirectory(prefix="worldloop_shim_") as shim:
        # The child imports the caller's worldloop, whatever the environment itself has installed.
        (Path(shim) / "worldloop").symlink_to(checkout(), target_is_directory=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [shim, os.environ.get("PYTHONPATH")]))}
        args = json.dumps({"run": str(Path(run).resolve()), **kwargs})
        proc = subprocess.run([str(python), "-m", "worldloop.sim2real.isaaclab_transfer", args], env=env,
                              capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise IsaacLabEvalError(f"the evaluation in {python} failed (exit {proc.returncode}):\n{tail}")
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise IsaacLabEvalError(f"the evaluation in {python} printed no JSON result:\n{proc.stdout[-2000:]}") from None


def main(argv: list[str] | None = None) -> dict:
    """Subprocess entry: ``argv[0]`` is :func:`evaluate_counterpart`'s keyword arguments as JSON; prints its
    result as one JSON line on stdout (what Isaac Lab and its engines print goes to stderr)."""
    kwargs = json.loads((sys.argv[1:] if argv is None else argv)[0])
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)  # engine output written to fd 1 (C and Python alike) goes to stderr
    try:
        result = evaluate_counterpart(kwargs.pop("run"), **kwargs)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
