"""Rollouts as datasets: LeRobot v3.0 written with pyarrow, read back as torch tensors, replayed.

    import worldloop.data as wd
    wd.collect("Franka-Lift-v0", "datasets/lift", episodes=1000, policy="expert")   # or `worldloop collect`
    ds = wd.load("datasets/lift", task="Franka-Lift-v0")
    ds.episode(0)["action"]                                   # (T, action_dim)
    batch = next(ds.windows(8, batch_size=256, shuffle=True))  # {column: (256, 8, ...)}, inside episodes
    wd.replay(ds, [0]).max_error("cube_joint")                # logged actions from the logged state

This package takes any callable policy and knows no learner (collecting with a trained run's policy
is composed in ``worldloop.scripts.collect``). Layout and crash safety: :mod:`.layout`, :mod:`.writer`.
"""

from worldloop.data.collect import CollectSummary, collect, features_of
from worldloop.data.layout import DatasetError
from worldloop.data.reader import Dataset, load
from worldloop.data.replay import ReplayResult, make_env, replay, task_config
from worldloop.data.writer import DatasetWriter

__all__ = [
    "CollectSummary",
    "Dataset",
    "DatasetError",
    "DatasetWriter",
    "ReplayResult",
    "collect",
    "features_of",
    "load",
    "make_env",
    "replay",
    "task_config",
]
