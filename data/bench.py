"""What writing a dataset costs: collection against the same :class:`~worldloop.envs.loop.Loop` without
writing, alternated in one process (so both see the same machine load)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from worldloop.data.collect import collect, resolve_policy, rss_mib
from worldloop.envs.loop import Loop
from worldloop.tasks import make


def compare_throughput(
    task: str,
    *,
    num_envs: int = 1024,
    rounds: int = 3,
    episodes_per_env: int = 4,
    policy: str = "expert",
    backend: str = "mujoco",
    seed: int = 0,
    out: str | Path | None = None,
    **cfg: Any,
) -> dict[str, Any]:
    """Alternate ``rounds`` times: ``episodes_per_env`` episodes of every env with the bare Loop (no field
    recorded), then as many episodes collected into a fresh dataset (deleted after the round; its
    time includes creating it and waiting for its last commit). One env serves every round.

    Returns ``{"loop_frames_per_s": [...], "collect_frames_per_s": [...], "ratio": collect / loop over
    all rounds, "bytes_per_round": ..., "rss_mib": [...] after each round, "rss_mib_at_commits": [...]
    during the last}`` (frames/s = env steps or kept frames per second of wall clock)."""
    env = make(task, num_envs=num_envs, backend=backend, seed=seed, **cfg)
    tmp = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="worldloop-bench-"))
    steps = env.max_episode_length * episodes_per_env
    act = resolve_policy(env, policy, seed)
    res: dict[str, Any] = {"task": task, "num_envs": num_envs, "backend": env.backend_name, "policy": policy,
                           "steps_per_round": steps, "loop_frames_per_s": [], "collect_frames_per_s": [],
                           "rss_mib": []}  # fmt: skip
    loop_frames = loop_s = col_frames = col_s = 0.0
    try:
        for i in range(rounds):
            t0 = time.perf_counter()
            for _ in Loop(env, act).run(steps, chunk=steps, fields=(), reset=True):
                pass
            dt = time.perf_counter() - t0
            loop_frames, loop_s = loop_frames + num_envs * steps, loop_s + dt
            res["loop_frames_per_s"].append(num_envs * steps / dt)
            d = tmp / f"round-{i}"
            s = collect(env, d, episodes=num_envs * episodes_per_env, policy=act, policy_name=policy, progress=None)
            col_frames, col_s = col_frames + s.new_frames, col_s + s.seconds
            res["collect_frames_per_s"].append(s.frames_per_s)
            res["bytes_per_round"] = s.bytes
            res["rss_mib"].append(rss_mib())
            res["rss_mib_at_commits"] = [round(x) for x in s.rss_mib]  # the last round's, one per commit
            shutil.rmtree(d)
    finally:
        env.close()
        if out is None:
            shutil.rmtree(tmp, ignore_errors=True)
    res["ratio"] = (col_frames / col_s) / (loop_frames / loop_s)
    return res
