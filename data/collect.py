"""`collect`: run a policy in a batched env with the :class:`~worldloop.envs.loop.Loop` and keep its
complete episodes as a LeRobot v3.0 dataset.

    summary = worldloop.data.collect("Franka-Lift-v0", "datasets/lift", episodes=1000, policy="expert")

Which episodes are kept: the first ``episodes`` episodes to *start* (numbered by the step they
start at, then by env index), each once it has ended, whatever its length. Selecting by start keeps
the dataset unbiased: stopping at the first N to *finish* would favour short episodes. Episodes
started after those, and those still running when the last kept one ends, are dropped and counted
in the summary (``dropped``).

Each kept episode records, per frame (before each action): ``observation.state`` (the ``policy``
observation), ``observation.environment_state`` (the ``critic`` one), ``observation.qpos`` /
``observation.qvel`` (the physics state, restorable with ``env.set_state``), ``action`` (as executed,
after ``action_noise`` and clipping), and what followed it: ``next.reward``, ``next.done``, ``next.terminated``,
``next.success``. Per episode (``meta/episodes``): ``success`` (at its last step), ``return``, the
env ``seed``, the ``backend``, and the randomization draws it ran with, one column per term
component, ``rand/<term>/<column>`` as ``env.randomizer.columns(term)`` names them. Terms redrawn
every step (``mode="step"`` noise) have no per-episode value and are not recorded; ``interval`` terms
are recorded as drawn at the episode's start.
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import torch

import worldloop
from worldloop.data import layout
from worldloop.data.layout import DatasetError
from worldloop.data.progress import Progress
from worldloop.data.writer import DatasetWriter
from worldloop.envs.batched_env import BatchedEnv
from worldloop.envs.loop import Loop, Policy
from worldloop.tasks import make

RAND_PREFIX = "rand/"
"""Prefix of the per-episode randomization columns: ``rand/<term>/<column>``."""
OBS_GROUPS = {"observation.state": "policy", "observation.environment_state": "critic"}
"""Dataset feature <- observation group."""
_LOOP_FIELDS = ("obs", "critic_obs", "actions", "rewards", "terminated", "truncated", "success", "qpos", "qvel")


@dataclass
class CollectSummary:
    """What a :func:`collect` call did."""

    path: str
    """The dataset directory."""
    episodes: int
    """Episodes in the dataset now."""
    frames: int
    """Frames in the dataset now."""
    new_episodes: int
    """Episodes this call added."""
    new_frames: int
    """Frames this call added."""
    dropped: int
    """Complete or cut episodes this call stepped but did not keep (see the module docstring)."""
    success_rate: float
    """Share of this call's episodes that succeeded at their last step (nan if none)."""
    seconds: float
    """[s] wall clock of the call, dataset writes included."""
    frames_per_s: float
    """Frames kept per second of wall clock."""
    env_steps: int
    """Env steps taken (``num_envs`` per policy step)."""
    bytes: int
    """Size of the dataset's files on disk [bytes]."""
    seed: int
    """Seed of the env this call stepped."""
    rss_mib: list[float] = dataclasses.field(default_factory=list)
    """[MiB] resident memory of the process after each commit (Linux), to show it stays flat."""


def config_json(cfg: Any) -> dict[str, Any]:
    """A task config as JSON data (what ``info.json``'s ``worldloop.task_config`` holds)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def robot_type(env: BatchedEnv) -> str:
    """``info.json``'s ``robot_type``: the task class's ``robot_type`` if it sets one, else the first word
    of the task id, lower case (``Franka-Lift-v0`` -> ``franka``)."""
    return getattr(type(env.task), "robot_type", None) or env.task_id.split("-")[0].lower()


def rand_columns(env: BatchedEnv) -> dict[str, list[str]]:
    """``{term: [column, ...]}`` of the randomization terms with a per-episode value (not ``step`` mode)."""
    terms = env.randomizer.terms
    return {name: env.randomizer.columns(name) for name, t in terms.items() if t.mode != "step"}


def features_of(env: BatchedEnv) -> dict[str, dict[str, Any]]:
    """The frame features a collection from ``env`` writes (LeRobot's index columns excluded)."""
    obs = env.task.observe()  # sizes only: env.get_observations() would reset a fresh env (and draw)
    m = getattr(env, "mj_model", None)
    feats: dict[str, dict[str, Any]] = {}
    for name, group in OBS_GROUPS.items():
        if group in obs:
            n = obs[group].shape[-1]
            feats[name] = layout.feature("float32", n, [f"{group}[{i}]" for i in range(n)])
    feats["action"] = layout.feature("float32", env.action_dim, [f"a[{i}]" for i in range(env.action_dim)])
    # Envs without a MuJoCo model (the isaaclab backend) name their joints themselves.
    names = getattr(env, "qpos_names", None)
    feats["observation.qpos"] = layout.feature("float32", env.nq, names or coord_names(m, "qpos"))
    feats["observation.qvel"] = layout.feature("float32", env.nv, names or coord_names(m, "qvel"))
    feats["next.reward"] = layout.feature("float32", 1)
    feats["next.done"] = layout.feature("bool", 1)
    feats["next.terminated"] = layout.feature("bool", 1)
    feats["next.success"] = layout.feature("bool", 1)
    return feats


def coord_names(m, kind: str) -> list[str]:
    """Names of the ``qpos`` or ``qvel`` coordinates: the joint's name, with a suffix for free and ball
    joints (``cube_joint.x`` ... ``cube_joint.qw`` ...)."""
    import mujoco

    suffix = {
        "qpos": {mujoco.mjtJoint.mjJNT_FREE: ["x", "y", "z", "qw", "qx", "qy", "qz"],
                 mujoco.mjtJoint.mjJNT_BALL: ["qw", "qx", "qy", "qz"]},
        "qvel": {mujoco.mjtJoint.mjJNT_FREE: ["vx", "vy", "vz", "wx", "wy", "wz"],
                 mujoco.mjtJoint.mjJNT_BALL: ["wx", "wy", "wz"]},
    }[kind]  # fmt: skip
    names = []
    for j in range(m.njnt):
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}"
        parts = suffix.get(mujoco.mjtJoint(m.jnt_type[j]))
        names += [f"{name}.{p}" for p in parts] if parts else [name]
    return names


def resolve_policy(env: BatchedEnv, policy: str | Policy, seed: int) -> Policy:
    """``"expert"`` (the task's scripted expert), ``"random"`` (uniform actions in ``[-1, 1]``, seeded), or
    a callable ``obs -> actions`` as it is."""
    if callable(policy):
        return policy
    if policy == "expert":
        if not env.task.has_expert():
            raise ValueError(f"{env.task_id} has no scripted expert; use --policy random or a trained run's directory")
        return lambda obs: env.task.expert()
    if policy == "random":
        gen = torch.Generator(device=env.device).manual_seed(seed)
        shape = (env.num_envs, env.action_dim)
        return lambda obs: torch.rand(shape, generator=gen, device=env.device) * 2 - 1
    raise ValueError(f"policy must be 'expert', 'random' or a callable obs -> actions, got {policy!r}")


def rss_mib() -> float:
    """[MiB] resident memory of this process now (Linux ``/proc``; the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dataset_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.suffix in (".parquet", ".json"))


def collect(
    task: str | BatchedEnv,
    out: str | Path,
    *,
    episodes: int,
    policy: str | Policy = "expert",
    policy_name: str | None = None,
    num_envs: int | None = None,
    backend: str = "auto",
    seed: int = 0,
    resume: bool = False,
    data_files_size_in_mb: int = layout.DATA_FILES_SIZE_IN_MB,
    commit_interval_s: float = 30.0,
    action_noise: float = 0.0,
    progress: TextIO | None = sys.stderr,
    **cfg_overrides: Any,
) -> CollectSummary:
    """Collect ``episodes`` complete episodes of a policy into the LeRobot v3.0 dataset ``out``.

    Args:
        task: a registered task id (the env is built here), or a built :class:`BatchedEnv` (then
            ``num_envs``, ``backend``, ``seed`` and ``cfg_overrides`` must be left out).
        out: dataset directory; created if missing.
        episodes: episodes the dataset holds at the end (>= 1); with ``resume``, the total including
            those already there.
        policy: ``"expert"``, ``"random"``, or a callable ``obs -> actions`` (``(num_envs, action_dim)``).
        policy_name: how ``info.json`` names a callable policy (e.g. a run directory and checkpoint).
        num_envs: envs stepped together; default ``min(episodes still to collect, 1024)``.
        backend: ``"auto"``, ``"mujoco"`` or ``"newton"``.
        seed: env seed; a resumed collection whose dataset already used it takes the next unused one.
        resume: continue the dataset at ``out`` (what a killed collection left is cut back to its last
            commit first); the task, config and policy must be the ones it was started with.
        data_files_size_in_mb: [MiB] data files roll over at this size; it is also how much is
            buffered in memory before a commit.
        commit_interval_s: [s] commit buffered episodes at least this often (a killed collection loses
            at most this much work, plus a partial file's worth).
        action_noise: std of Gaussian noise added to every action of the policy before it is executed (and
            recorded as executed), seeded from the env seed. With an expert this is DART (Laskey et al.,
            "DART: Noise Injection for Robust Imitation Learning", CoRL 2017): the demonstrations then show
            the expert correcting the drift a cloned policy will make, and since the noise has zero mean,
            behaviour cloning on the executed actions still regresses to the expert's. Recorded in
            ``info.json`` (``worldloop.action_noise``); a resumed collection must use the same.
        progress: stream for the progress display (tqdm bar, or plain lines off a terminal); ``None``
            for silence.
        **cfg_overrides: task config fields, e.g. ``action_space="joint_pos"``.

    Returns:
        A :class:`CollectSummary`.

    Raises:
        ValueError: ``episodes < 1``, ``action_noise`` negative or not finite, an unknown policy name, or a task
            without an expert for ``"expert"``.
        DatasetError: ``out`` holds a dataset and ``resume`` is false, or one of another task, config
            or policy (the message names the file and the field).
        KeyError: an unknown task id.
    """
    t_start = time.perf_counter()
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if not (math.isfinite(action_noise) and action_noise >= 0.0):
        raise ValueError(f"action_noise must be a finite std >= 0, got {action_noise!r}")
    out = Path(out)
    own_env = not isinstance(task, BatchedEnv)
    if not own_env and (num_envs is not None or cfg_overrides):
        raise ValueError("collect(env, ...): num_envs and config overrides belong to the env already built")
    previous = _existing(out) if resume else None
    if previous is not None and own_env:
        new = unused_seed(out, seed)
        if new != seed and progress is not None:
            progress.write(f"[worldloop] collect: seed {seed} is in {out} already; continuing with seed {new}\n")
        seed = new
    if own_env:
        left = episodes - (len(previous["seeds"]) if previous else 0)
        env = make(task, num_envs=num_envs or max(1, min(left, 1024)), backend=backend, seed=seed, **cfg_overrides)
    else:
        env = task
    try:
        name = policy_name or (policy if isinstance(policy, str) else getattr(policy, "__name__", "callable"))
        meta = {
            "task": env.task_id,
            "task_config": config_json(env.cfg),
            "policy": name,
            "step_dt": env.step_dt,
            "num_envs": env.num_envs,
            "observation_groups": {k: v for k, v in OBS_GROUPS.items()},
            "randomization_columns": rand_columns(env),
            "action_noise": float(action_noise),
            "episode_selection": "the first episodes to start, each kept once it ended",
            "worldloop_version": worldloop.__version__,
        }
        if previous is not None:
            _check_same(out, previous["worldloop"], meta)
            if env.seed in previous["seeds"]:
                raise DatasetError(
                    f"{out / layout.EPISODES_PATH}: column 'seed' already holds {env.seed}; an env with this seed "
                    "would repeat those episodes: build it with another seed"
                )
        act = resolve_policy(env, policy, env.seed)  # an unusable policy is refused before anything is written
        if action_noise > 0.0:
            policy = _with_noise(act, action_noise, env)
        return _run(env, out, episodes, policy, meta, resume, data_files_size_in_mb, commit_interval_s,
                    progress, t_start)  # fmt: skip
    finally:
        if own_env:
            env.close()


def _with_noise(policy: Policy, std: float, env: BatchedEnv) -> Policy:
    """``policy`` with seeded Gaussian noise of ``std`` on every action (``collect``'s ``action_noise``)."""
    gen = torch.Generator(device=env.device).manual_seed(env.seed + 7_919)

    def noisy(obs):
        a = policy(obs)
        return a + std * torch.randn(a.shape, generator=gen, device=a.device, dtype=a.dtype)

    return noisy


def unused_seed(out: str | Path, seed: int) -> int:
    """``seed``, or the next seed the dataset at ``out`` has not used (its episodes' ``seed`` column)."""
    previous = _existing(Path(out))
    used = set(previous["seeds"]) if previous else set()
    return max(used) + 1 if seed in used else seed


def _existing(out: Path) -> dict[str, Any] | None:
    """The ``worldloop`` block and used seeds of the dataset at ``out`` (None if there is none)."""
    info_path = out / layout.INFO_PATH
    if not info_path.exists():
        return None
    import pyarrow.parquet as pq

    info = layout.read_json(info_path, "info")
    if "worldloop" not in info:
        raise DatasetError(f"{info_path}: no 'worldloop' block: not a dataset worldloop collected, cannot resume it")
    seeds: list[int] = []
    ep_path = out / layout.EPISODES_PATH
    if ep_path.exists():
        seeds = pq.read_table(ep_path, columns=["seed"])["seed"].to_pylist()[: int(info["total_episodes"])]
    return {"worldloop": info["worldloop"], "seeds": seeds}


def _check_same(out: Path, stored: dict[str, Any], meta: dict[str, Any]) -> None:
    """A resumed collection must be the same task, config and policy as the one it continues."""
    where = out / layout.INFO_PATH
    for key, default in (("task", None), ("policy", None), ("action_noise", 0.0)):
        if stored.get(key, default) != meta[key]:
            raise DatasetError(
                f"{where}: worldloop.{key} is {stored.get(key, default)!r}, this collection's is {meta[key]!r}; "
                "resume with the same one or write to another directory"
            )
    old, new = stored.get("task_config", {}), meta["task_config"]
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        k = diff[0]
        raise DatasetError(
            f"{where}: worldloop.task_config.{k} is {old.get(k)!r}, this collection's is {new.get(k)!r} "
            f"(fields that differ: {diff}); resume with the same config or write to another directory"
        )


def _run(env, out, target, policy, meta, resume, size_mb, commit_interval_s, stream, t_start):
    features = features_of(env)
    rand_cols = meta["randomization_columns"]
    episode_columns = {"success": pa.bool_(), "return": pa.float64(), "seed": pa.int64(), "backend": pa.string()}
    episode_columns.update({f"{RAND_PREFIX}{t}/{c}": pa.float32() for t, cols in rand_cols.items() for c in cols})
    writer = DatasetWriter(
        out,
        features=features,
        fps=1.0 / env.step_dt,
        robot_type=robot_type(env),
        task=(env.task.__doc__ or env.task_id).strip().splitlines()[0],
        episode_columns=episode_columns,
        worldloop=meta,
        data_files_size_in_mb=size_mb,
        resume=resume,
    )
    # Per-step copies of (num_envs, ~100) tensors: on a busy CPU torch's thread barrier costs 50x more
    # than they do on one thread (measured 6.4 ms vs 0.1 ms a step at 1,024 envs; BatchedEnv does the same).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _collect_into(env, writer, target, policy, features, rand_cols, commit_interval_s, stream,
                             t_start)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
        writer.close()


def _collect_into(env, writer, target, policy, features, rand_cols, commit_interval_s, stream, t_start):
    n, dev = env.num_envs, env.device
    have = writer.total_episodes
    remaining = target - have
    bar = Progress(target, initial=have, desc=env.task_id, stream=stream)
    frames0 = writer.total_frames
    if remaining <= 0:
        bar.close(f"[worldloop] {writer.root} already holds {have} episodes (asked for {target})")
        return _summary(writer, env, frames0, have, 0, [], t_start, 0)

    # Column layout of one frame in the per-env episode buffer (float32; bools as 0/1).
    widths = {name: int(ft["shape"][0]) for name, ft in features.items()}
    offsets, start = {}, 0
    for name, w in widths.items():
        offsets[name] = slice(start, start + w)
        start += w
    L = env.max_episode_length
    buf = torch.zeros(L, n, start, device=dev)
    pos = torch.zeros(n, dtype=torch.long, device=dev)
    ar = torch.arange(n, device=dev)
    term_names = list(rand_cols)

    def rand_snapshot() -> torch.Tensor:
        vals = env.randomizer.values()
        return torch.cat([vals[t] for t in term_names], -1) if term_names else torch.zeros(n, 0, device=dev)

    env.reset()
    rand_buf = rand_snapshot()
    order = torch.arange(n, device=dev)  # ordinal of each env's current episode, by start
    started = n
    kept_total, successes, dropped, new_frames, rss = 0, [], 0, 0, []
    act = resolve_policy(env, policy, env.seed)
    loop = Loop(env, act)
    last_commit = time.perf_counter()
    max_steps = (math.ceil(remaining / n) + 1) * L + 1
    steps = loop.run(max_steps, chunk=1, fields=_LOOP_FIELDS)
    finished = False
    for r in steps:
        done = r.terminated[0] | r.truncated[0]
        row = {
            "observation.state": r.obs[0],
            "observation.environment_state": r.critic_obs[0] if r.critic_obs is not None else None,
            "action": r.actions[0],
            "observation.qpos": r.qpos[0],
            "observation.qvel": r.qvel[0],
            "next.reward": r.rewards[0, :, None],
            "next.done": done[:, None].float(),
            "next.terminated": r.terminated[0][:, None].float(),
            "next.success": r.success[0][:, None].float(),
        }
        buf[pos, ar] = torch.cat([row[name] for name in features], -1)
        pos += 1
        if not bool(done.any()):
            bar.update(have + kept_total, new_frames)
            continue
        keep = done & (order < remaining)
        if bool(keep.any()):
            idx = keep.nonzero().flatten()
            frames, lengths, ep_vals = _extract(buf, pos, idx, offsets, features, rand_buf, rand_cols, env)
            writer.add(frames, lengths, ep_vals)
            kept_total += len(idx)
            new_frames += int(lengths.sum())
            successes += ep_vals["success"].tolist()
        dropped += int((done & ~keep).sum())
        # The envs that ended start new episodes: number them in env order.
        order = torch.where(done, started + torch.cumsum(done.long(), 0) - 1, order)
        started += int(done.sum())
        pos = torch.where(done, 0, pos)
        rand_buf = torch.where(done[:, None], rand_snapshot(), rand_buf)
        finished = kept_total >= remaining
        now = time.perf_counter()
        if finished or writer.should_commit() or now - last_commit >= commit_interval_s:
            writer.commit(wait=False)  # on the writer's thread, while the envs step on
            last_commit = now
            rss.append(rss_mib())
        bar.update(have + kept_total, new_frames)
        if finished:
            steps.close()
            break
    # Episodes still running now are cut by the end of the collection.
    cut = int((order < remaining).sum()) if not finished else int((pos > 0).sum())
    dropped += cut
    writer.commit()
    writer.flush()
    s = _summary(writer, env, frames0, have, dropped, successes, t_start, loop.env_steps)
    s.rss_mib = rss
    msg = (
        f"[worldloop] {s.path}: {s.episodes} episodes, {s.frames:,} frames ({s.bytes / 2**20:.1f} MiB); "
        f"this run added {s.new_episodes} episodes (success {100 * s.success_rate:.1f}%) in {s.seconds:.1f} s; "
        f"dropped {s.dropped} episodes that started after the last kept one or were cut by the end"
    )
    bar.close(msg)
    return s


def _extract(buf, pos, idx, offsets, features, rand_buf, rand_cols, env):
    """The frames ``(sum(lengths), ...)`` and per-episode values of the episodes of envs ``idx``."""
    lengths = pos[idx]
    if bool((lengths == lengths[0]).all()):
        ep = buf[: int(lengths[0])] if len(idx) == buf.shape[1] else buf[: int(lengths[0]), idx]
        rows = ep.transpose(0, 1).reshape(-1, buf.shape[-1])
    else:
        ep = buf[: int(lengths.max()), idx].transpose(0, 1)
        valid = torch.arange(ep.shape[1], device=buf.device) < lengths[:, None]
        rows = ep[valid]
    if rows.untyped_storage().data_ptr() == buf.untyped_storage().data_ptr():
        rows = rows.clone()  # a view (one env): the writer's thread reads it after the next steps
    rows = rows.cpu().numpy()
    lengths_np = lengths.cpu().numpy()
    frames = {}
    for name, sl in offsets.items():
        x = rows[:, sl]
        frames[name] = x > 0.5 if features[name]["dtype"] == "bool" else x
        if features[name]["shape"] == [1]:
            frames[name] = frames[name][:, 0]
    ends = np.cumsum(lengths_np) - 1
    rewards = np.add.reduceat(frames["next.reward"].astype(np.float64), np.r_[0, ends[:-1] + 1])
    ep_vals: dict[str, Any] = {
        "success": frames["next.success"][ends],
        "return": rewards,
        "seed": np.full(len(idx), env.seed, dtype=np.int64),
        "backend": [env.backend_name] * len(idx),
    }
    rand = rand_buf[idx].cpu().numpy()
    j = 0
    for t, cols in rand_cols.items():
        for c in cols:
            ep_vals[f"{RAND_PREFIX}{t}/{c}"] = rand[:, j]
            j += 1
    return frames, lengths_np, ep_vals


def _summary(writer, env, frames0, have, dropped, successes, t_start, env_steps) -> CollectSummary:
    dt = time.perf_counter() - t_start
    new_e = writer.total_episodes - have
    new_f = writer.total_frames - frames0
    return CollectSummary(
        path=str(writer.root),
        episodes=writer.total_episodes,
        frames=writer.total_frames,
        new_episodes=new_e,
        new_frames=new_f,
        dropped=dropped,
        success_rate=float(np.mean(successes)) if successes else float("nan"),
        seconds=dt,
        frames_per_s=new_f / dt if dt > 0 else 0.0,
        env_steps=env_steps,
        bytes=_dataset_bytes(writer.root),
        seed=env.seed,
    )
