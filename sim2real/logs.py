"""Robot logs: commanded actions and measured joints, read from a LeRobot v3.0 dataset or a CSV file.

    logs = read_logs("datasets/reality_lift", env)        # a LeRobot v3.0 dataset directory
    logs = read_logs("robot_log.csv", env)                 # or the CSV layout below

A log is what a real robot records: per frame (one policy step, before its action) the **action**
sent, in the env's action space (``env.action_dim`` numbers, e.g. ``ee_pos`` grip displacements), the
**measured joint positions**, and optionally measured **joint torques** and **object poses**.
Measured coordinates are named as the scene's ``qpos`` coordinates (``worldloop collect`` names
``observation.qpos`` columns this way): ``joint1`` ... ``joint7``, ``finger_joint1``, and for a free
body ``cube_joint.x``, ``.y``, ``.z``, ``.qw``, ``.qx``, ``.qy``, ``.qz`` (MuJoCo's ``(w, x, y, z)``).

LeRobot v3.0 dataset (``worldloop collect`` output, or a real robot's): frame features
    ``action``                 ``(action_dim,)``
    ``observation.qpos``       measured coordinates, the feature's ``names`` as above (a real robot's
                               may use ``observation.state`` with such ``names`` instead)
    ``observation.effort``     optional, ``(n,)`` measured torques [N m], ``names``: actuator names
``info.json``'s ``robot_type`` must be the env's (``franka`` for the Franka scenes) and its ``fps``
the env's policy rate.

CSV (one row per frame, a header row, any column order):
    ``episode_index``, ``frame_index``     integers; frames of an episode are 0, 1, 2, ... (any row order)
    ``timestamp``                          optional [s]; without it a CSV has no rate of its own and its
                                           frames are taken as the env's policy steps; with it the median
                                           frame interval must be the env's step within 2%
    ``action.0`` ... ``action.<A-1>``      the action
    ``joint1`` ... (coordinate names)      measured coordinates, at least every actuated arm joint
    ``effort.<actuator>``                  optional measured torques [N m], e.g. ``effort.actuator1``

Measured torques are the arm actuators' output without the arm's own gravity (worldloop compensates
gravity outside the servos; on a Franka: ``tau_J`` minus libfranka's ``Model::gravity``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
import torch

from worldloop.data import layout
from worldloop.data.collect import coord_names, robot_type
from worldloop.data.layout import DatasetError
from worldloop.envs.batched_env import BatchedEnv


class LogError(DatasetError):
    """A log that cannot be replayed in the env: a missing or inconsistent column, another robot."""


@dataclass
class RobotLogs:
    """Episodes of a robot log, padded to the longest: ``[episode, time, ...]`` float32 tensors."""

    source: str
    """Where the log was read from."""
    task: str | None
    """The worldloop task id the log names (LeRobot ``info.json``), if any."""
    fps: float
    """Frames per second."""
    actions: torch.Tensor
    """``(E, T, action_dim)`` commanded actions."""
    coords: list[str]
    """Names of the measured coordinates, in :attr:`measured` column order (scene ``qpos`` names)."""
    measured: torch.Tensor
    """``(E, T, len(coords))`` measured coordinates [rad, m, quaternion]."""
    lengths: torch.Tensor
    """``(E,)`` int64 frames per episode."""
    effort_names: list[str]
    """Actuator names of the :attr:`effort` columns (empty without torques)."""
    effort: torch.Tensor | None
    """``(E, T, len(effort_names))`` measured torques [N m], or ``None``."""

    @property
    def num_episodes(self) -> int:
        return int(self.actions.shape[0])

    @property
    def valid(self) -> torch.Tensor:
        """``(E, T)`` bool: the frame is inside its episode."""
        return torch.arange(self.actions.shape[1])[None, :] < self.lengths[:, None]

    def select(self, episodes: list[int] | torch.Tensor) -> RobotLogs:
        """The logs of some episodes (indices into this log)."""
        i = torch.as_tensor(episodes, dtype=torch.long)
        T = int(self.lengths[i].max())
        return RobotLogs(
            self.source,
            self.task,
            self.fps,
            self.actions[i, :T],
            list(self.coords),
            self.measured[i, :T],
            self.lengths[i],
            list(self.effort_names),
            None if self.effort is None else self.effort[i, :T],
        )


def read_logs(path: str | Path, env: BatchedEnv, *, episodes: int | None = None) -> RobotLogs:
    """Read and check a robot log against ``env`` (its scene, action space and policy rate).

    Args:
        path: a LeRobot v3.0 dataset directory or a ``.csv`` file (layouts in the module docstring).
        env: an env of the task the log is replayed in.
        episodes: read only the first this many episodes.

    Raises:
        LogError: a missing, unknown or inconsistent column, a gap in ``frame_index``, a non-finite
            value, another robot, action width or frame rate; the message names the column or field.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such log (a LeRobot v3.0 dataset directory or a .csv file)")
    if path.is_dir():
        logs = _read_lerobot(path, env, episodes)
    else:
        logs = _read_csv(path, env, episodes)
    _check_against(logs, env)
    return logs


# ---------------------------------------------------------------------------------------- LeRobot
def _read_lerobot(root: Path, env: BatchedEnv, limit: int | None) -> RobotLogs:
    from worldloop.data.reader import load

    info = layout.read_json(root / layout.INFO_PATH, "meta/info.json")
    feats = info.get("features", {})
    where = root / layout.INFO_PATH
    want = robot_type(env)
    if info.get("robot_type") not in (None, want):
        raise LogError(f"{where}: robot_type is {info.get('robot_type')!r}, the env's robot is {want!r}")
    state = next((c for c in ("observation.qpos", "observation.state") if _named_coords(feats.get(c), env)), None)
    if state is None:
        raise LogError(
            f"{where}: no measured joints: need feature 'observation.qpos' (or 'observation.state') whose "
            f"'names' are scene coordinates such as {coord_names(env.mj_model, 'qpos')[:3]}"
        )
    if "action" not in feats:
        raise LogError(f"{where}: feature 'action' missing (the commanded actions)")
    columns = ["action", state] + (["observation.effort"] if "observation.effort" in feats else [])
    ds = load(root, columns=columns)
    n = ds.num_episodes if limit is None else min(limit, ds.num_episodes)
    if n == 0:
        raise LogError(f"{root}: no episodes")
    eps = [ds.episode(i) for i in range(n)]
    lengths = torch.tensor([len(e["action"]) for e in eps])
    effort_names = list(feats["observation.effort"].get("names") or []) if "observation.effort" in feats else []
    if "observation.effort" in feats and len(effort_names) != int(feats["observation.effort"]["shape"][0]):
        raise LogError(f"{where}: feature 'observation.effort' needs 'names' (one actuator name per column)")
    wl = info.get("worldloop") or {}
    return RobotLogs(
        source=str(root),
        task=wl.get("task"),
        fps=float(info["fps"]),
        actions=_pad([e["action"] for e in eps]),
        coords=list(feats[state]["names"]),
        measured=_pad([e[state] for e in eps]),
        lengths=lengths,
        effort_names=effort_names,
        effort=_pad([e["observation.effort"] for e in eps]) if effort_names else None,
    )


def _named_coords(ft: dict | None, env: BatchedEnv) -> bool:
    names = (ft or {}).get("names")
    scene = set(coord_names(env.mj_model, "qpos"))
    return bool(names) and all(isinstance(n, str) for n in names) and set(names) <= scene


def _pad(rows: list[torch.Tensor]) -> torch.Tensor:
    T = max(len(r) for r in rows)
    out = torch.zeros(len(rows), T, *rows[0].shape[1:])
    for i, r in enumerate(rows):
        out[i, : len(r)] = r.float()
    return out


# ---------------------------------------------------------------------------------------- CSV
def _read_csv(path: Path, env: BatchedEnv, limit: int | None) -> RobotLogs:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise LogError(f"{path}: empty file (a header row is needed)") from None
        rows = [r for r in reader if r]
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise LogError(f"{path}: column(s) {dup} appear more than once")
    for need in ("episode_index", "frame_index"):
        if need not in header:
            raise LogError(f"{path}: column {need!r} missing (layout: worldloop.sim2real.logs)")
    A = env.action_dim
    action_cols = [f"action.{i}" for i in range(A)]
    missing = [c for c in action_cols if c not in header]
    if missing:
        raise LogError(f"{path}: action column(s) {missing} missing: the env's action space takes {A} numbers")
    extra = [h for h in header if h.startswith("action.") and h not in action_cols]
    if extra:
        raise LogError(f"{path}: column(s) {extra}: the env's action space takes {A} numbers: action.0..action.{A - 1}")
    scene = coord_names(env.mj_model, "qpos")
    actuators = [mujoco.mj_id2name(env.mj_model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in range(env.mj_model.nu)]
    coords = [h for h in header if h in scene]
    effort_cols = [h for h in header if h.startswith("effort.")]
    unknown = [
        h for h in header if h not in ("episode_index", "frame_index", "timestamp", *action_cols, *coords, *effort_cols)
    ]
    if unknown:
        raise LogError(
            f"{path}: column(s) {unknown} are not coordinates of the scene {env.scene_path.name} "
            f"(a log of another robot?); its coordinates: {scene}"
        )
    if not coords:
        raise LogError(f"{path}: no measured joint columns; the scene's coordinates: {scene}")
    bad_effort = [c for c in effort_cols if c.removeprefix("effort.") not in actuators]
    if bad_effort:
        raise LogError(f"{path}: column(s) {bad_effort} name no actuator of the scene; actuators: {actuators}")
    try:
        table = np.array([[float(x) for x in r] for r in rows], dtype=np.float64).reshape(len(rows), len(header))
    except ValueError as e:
        raise LogError(f"{path}: a row does not hold {len(header)} numbers: {e}") from None
    col = {h: table[:, i] for i, h in enumerate(header)}
    for h in header:
        if not np.isfinite(col[h]).all():
            r = int(np.flatnonzero(~np.isfinite(col[h]))[0])
            raise LogError(f"{path}: column {h!r} is not finite in data row {r + 1}")
    ep, fr = col["episode_index"].astype(np.int64), col["frame_index"].astype(np.int64)
    ids = sorted(set(ep.tolist()))[: limit or None]
    if not ids:
        raise LogError(f"{path}: no frames")
    acts, meas, effs, dts = [], [], [], []
    for e in ids:
        rows_e = np.flatnonzero(ep == e)
        order = rows_e[np.argsort(fr[rows_e], kind="stable")]
        got = fr[order]
        if not np.array_equal(got, np.arange(len(order))):
            bad = int(np.flatnonzero(got != np.arange(len(order)))[0])
            if got[bad] > bad:
                what = f"frame {bad} is missing"
            elif bad > 0 and got[bad] == got[bad - 1]:
                what = f"frame {bad - 1} repeats"
            else:
                what = f"frame_index {int(got[bad])} is out of range"
            raise LogError(
                f"{path}: episode {e}: {what} ({len(order)} rows, frame_index {int(got.min())}..{int(got.max())}); "
                "frame_index must run 0, 1, 2, ... without gaps or repeats"
            )
        if "timestamp" in col and len(order) > 1:
            dts.append(np.diff(col["timestamp"][order]))
        acts.append(torch.from_numpy(np.stack([col[c][order] for c in action_cols], -1)))
        meas.append(torch.from_numpy(np.stack([col[c][order] for c in coords], -1)))
        if effort_cols:
            effs.append(torch.from_numpy(np.stack([col[c][order] for c in effort_cols], -1)))
    fps = 1.0 / env.step_dt
    if dts:  # real clocks jitter: the median frame interval, within 2% of the env's policy step
        dt = float(np.median(np.concatenate(dts)))
        if not dt > 0 or abs(1.0 / dt - fps) > 0.02 * fps:
            rate = f"{1.0 / dt:.4g} frames per second" if dt > 0 else f"a median interval of {dt:g} s"
            raise LogError(f"{path}: column 'timestamp' gives {rate}; {env.task_id} runs at {fps:g} policy steps "
                           "per second (resample the log to the env's rate, or drop the column)")  # fmt: skip
    return RobotLogs(
        source=str(path),
        task=None,
        fps=fps,
        actions=_pad(acts),
        coords=coords,
        measured=_pad(meas),
        lengths=torch.tensor([len(a) for a in acts]),
        effort_names=[c.removeprefix("effort.") for c in effort_cols],
        effort=_pad(effs) if effort_cols else None,
    )


# ---------------------------------------------------------------------------------------- checks
def _check_against(logs: RobotLogs, env: BatchedEnv) -> None:
    where = logs.source
    if logs.actions.shape[-1] != env.action_dim:
        raise LogError(
            f"{where}: 'action' has {logs.actions.shape[-1]} columns; {env.task_id}'s action space "
            f"({getattr(env.cfg, 'action_space', '?')}) takes {env.action_dim}"
        )
    fps = 1.0 / env.step_dt
    if abs(logs.fps - fps) > 1e-6 * fps:
        raise LogError(f"{where}: fps is {logs.fps:g}; {env.task_id} runs at {fps:g} policy steps per second")
    arm = [
        mujoco.mj_id2name(env.mj_model, mujoco.mjtObj.mjOBJ_JOINT, int(env.mj_model.actuator_trnid[i, 0]))
        for i in range(env.mj_model.nu)
        if env.mj_model.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT
    ]
    missing = [j for j in arm if j not in logs.coords]
    if missing:
        raise LogError(f"{where}: measured joint(s) {missing} missing; every actuated joint must be logged")
    for name, x in (("action", logs.actions), ("measured joints", logs.measured), ("effort", logs.effort)):
        if x is not None and not bool(torch.isfinite(x).all()):
            raise LogError(f"{where}: {name} holds NaN or inf")
    if (logs.lengths < 2).any():
        raise LogError(f"{where}: every episode needs at least 2 frames")
