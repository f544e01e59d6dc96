"""`load`: a LeRobot v3.0 dataset, validated, as torch tensors; episodes and K-step windows.

    ds = worldloop.data.load("datasets/lift", task="Franka-Lift-v0")
    ds.frames["observation.state"]                        # (num_frames, n) float32
    ep = ds.episode(0)                                    # {"action": (T, a), ...}
    for batch in ds.windows(8, batch_size=256, shuffle=True):
        batch["observation.state"]                        # (256, 8, n): 8 steps of one episode

Only what ``meta/info.json`` counts is read (files a killed collection left ahead of it are
ignored), so a dataset reads back with exactly its committed episodes at any moment.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from worldloop.data import layout
from worldloop.data.layout import DatasetError
from worldloop.data.writer import EPISODE_COLUMNS, column_to_numpy

if TYPE_CHECKING:
    from worldloop.envs.batched_env import BatchedEnv

_TORCH = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64, "bool": torch.bool}
_INFO_KEYS = ("codebase_version", "fps", "features", "total_episodes", "total_frames", "data_path")


class Dataset:
    """A loaded dataset: every frame of the chosen columns as tensors, and the episode table.

    Frames are in dataset order (episode after episode); episode ``i`` is rows
    ``episodes["dataset_from_index"][i]`` to ``episodes["dataset_to_index"][i]`` (exclusive)."""

    def __init__(self, root: Path, info: dict, frames: dict[str, torch.Tensor], episodes: dict[str, Any], stats: dict):
        self.root = root
        self.info = info
        """``meta/info.json``."""
        self.frames = frames
        """``{column: (num_frames, *shape)}`` tensors; scalar columns are ``(num_frames,)``."""
        self.episodes = episodes
        """``meta/episodes`` columns: ``(num_episodes,)`` tensors for numbers, lists for strings."""
        self.stats = stats
        """``meta/stats.json``: ``{feature: {"mean", "std", "min", "max", "count"}}``."""
        self._from = episodes["dataset_from_index"]
        self._to = episodes["dataset_to_index"]

    @property
    def num_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    @property
    def fps(self) -> float:
        """Frames per second of simulated (or recorded) time."""
        return float(self.info["fps"])

    @property
    def features(self) -> dict[str, dict]:
        """``info.json``'s features: ``{name: {"dtype", "shape", "names"}}``."""
        return self.info["features"]

    @property
    def task(self) -> str | None:
        """The worldloop task id it was collected from (None for a dataset from elsewhere)."""
        return self.info.get("worldloop", {}).get("task")

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (
            f"Dataset({str(self.root)!r}, task={self.task!r}, episodes={self.num_episodes}, "
            f"frames={self.num_frames}, columns={list(self.frames)})"
        )

    def episode(self, i: int) -> dict[str, torch.Tensor]:
        """Every loaded column of episode ``i``: ``{column: (length, *shape)}`` (views, not copies).

        Raises:
            IndexError: ``i`` is not in ``0..num_episodes - 1``."""
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"{self.root}: episode {i} out of range 0..{self.num_episodes - 1}")
        a, b = int(self._from[i]), int(self._to[i])
        return {k: v[a:b] for k, v in self.frames.items()}

    def window_starts(self, k: int) -> torch.Tensor:
        """``(num_windows,)`` first frame of every window of ``k`` consecutive frames inside one episode
        (an episode of length ``T`` has ``T - k + 1``, none if shorter than ``k``)."""
        if k < 1:
            raise ValueError(f"window length must be >= 1, got {k}")
        counts = (self._to - self._from - k + 1).clamp(min=0)
        base = torch.repeat_interleave(self._from, counts)
        offsets = torch.arange(int(counts.sum())) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        return base + offsets

    def window(self, starts: torch.Tensor, k: int, columns: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """The windows of ``k`` frames beginning at ``starts`` ``(B,)``: ``{column: (B, k, *shape)}``."""
        rows = starts.reshape(-1, 1) + torch.arange(k)
        return {c: self.frames[c][rows] for c in (columns or self.frames)}

    def windows(
        self,
        k: int,
        *,
        batch_size: int = 256,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        columns: Sequence[str] | None = None,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Batches of windows of ``k`` consecutive steps that never cross an episode end:
        ``{column: (batch, k, *shape)}`` (the batches a world model or behaviour cloning trains on).

        ``shuffle`` draws the order from a generator seeded with ``seed``; ``drop_last`` skips a last
        batch smaller than ``batch_size``."""
        starts = self.window_starts(k)
        if shuffle:
            starts = starts[torch.randperm(len(starts), generator=torch.Generator().manual_seed(seed))]
        for i in range(0, len(starts), batch_size):
            b = starts[i : i + batch_size]
            if drop_last and len(b) < batch_size:
                return
            yield self.window(b, k, columns)

    def randomization(self, episodes: Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        """The randomization draws the given episodes ran with: ``{term: (len(episodes), columns)}``
        float32, from the ``rand/<term>/<column>`` columns (what ``env.randomizer.set`` takes)."""
        idx = torch.as_tensor(episodes, dtype=torch.long)
        cols = self.info.get("worldloop", {}).get("randomization_columns", {})
        out = {}
        for term, names in cols.items():
            keys = [f"rand/{term}/{c}" for c in names]
            missing = [k for k in keys if k not in self.episodes]
            if missing:
                raise DatasetError(f"{self.root / layout.EPISODES_PATH}: missing column(s) {missing}")
            out[term] = torch.stack([torch.as_tensor(self.episodes[k])[idx] for k in keys], -1).float()
        return out


def load(
    path: str | Path,
    *,
    task: str | None = None,
    robot_type: str | None = None,
    env: BatchedEnv | None = None,
    columns: Sequence[str] | None = None,
) -> Dataset:
    """Read and validate the LeRobot v3.0 dataset at ``path``.

    Args:
        path: the dataset directory (holding ``meta/`` and ``data/``).
        task: refuse a dataset that was not collected from this worldloop task id.
        robot_type: refuse a dataset of another ``robot_type``.
        env: refuse a dataset whose columns do not fit this env: its task id, and the shapes of
            ``observation.state``, ``observation.environment_state``, ``action``, ``observation.qpos``
            and ``observation.qvel`` (where present).
        columns: data columns to load (default every numeric feature); each must be a feature.

    Returns:
        a :class:`Dataset`.

    Raises:
        DatasetError: a missing or malformed file, a feature or column that is missing or of the
            wrong dtype or shape, inconsistent indices, or a dataset of another task, robot or layout.
            The message names the file and the column.
    """
    root = Path(path)
    info_path = root / layout.INFO_PATH
    info = layout.read_json(info_path, "meta/info.json")
    missing = [k for k in _INFO_KEYS if k not in info]
    if missing:
        raise DatasetError(f"{info_path}: missing key(s) {missing}")
    if info["codebase_version"] != layout.CODEBASE_VERSION:
        raise DatasetError(
            f"{info_path}: codebase_version is {info['codebase_version']!r}; this reader knows "
            f"{layout.CODEBASE_VERSION!r} (convert older datasets with LeRobot's converter)"
        )
    features = info["features"]
    for name, ft in features.items():
        if "/" in name:
            raise DatasetError(f"{info_path}: feature {name!r} contains '/', which the layout does not allow")
        if not isinstance(ft, dict) or "dtype" not in ft or "shape" not in ft:
            raise DatasetError(f"{info_path}: feature {name!r} needs 'dtype' and 'shape', got {ft!r}")
    for name in layout.INDEX_FEATURES:
        if name not in features:
            raise DatasetError(f"{info_path}: feature {name!r} missing (every LeRobot dataset has it)")
    _check_identity(info, info_path, task, robot_type, env)
    numeric = [n for n, ft in features.items() if ft["dtype"] in _TORCH]
    if columns is None:
        columns = numeric
    else:
        columns = list(columns)
        for c in columns:
            if c not in features:
                raise DatasetError(f"{info_path}: no feature {c!r}; features: {list(features)}")
            if c not in numeric:
                raise DatasetError(f"{info_path}: feature {c!r} is {features[c]['dtype']!r}, not numeric")
    if env is not None:
        _check_env(info_path, features, env)
    total_e, total_f = int(info["total_episodes"]), int(info["total_frames"])
    episodes = _read_episodes(root, total_e, total_f)
    frames = _read_frames(root, info, episodes, sorted(set(columns) | {"index"}), total_f)
    if "index" not in columns:
        del frames["index"]
    stats_path = root / layout.STATS_PATH
    stats = layout.read_json(stats_path, "stats") if stats_path.exists() else {}
    return Dataset(root, info, frames, episodes, stats)


def _check_identity(info: dict, info_path: Path, task: str | None, robot_type: str | None, env) -> None:
    if env is not None:
        task = task or env.task_id
    if task is not None:
        have = info.get("worldloop", {}).get("task")
        if have is None:
            raise DatasetError(
                f"{info_path}: no worldloop.task: not collected by worldloop, cannot check it is {task!r}"
            )
        if have != task:
            raise DatasetError(f"{info_path}: worldloop.task is {have!r}, expected {task!r}: another task's dataset")
    if robot_type is not None and info.get("robot_type") != robot_type:
        raise DatasetError(f"{info_path}: robot_type is {info.get('robot_type')!r}, expected {robot_type!r}")


def _check_env(info_path: Path, features: dict, env) -> None:
    obs = env.task.observe()  # sizes only, without resetting the env
    expect = {
        "observation.state": obs["policy"].shape[-1],
        "observation.environment_state": obs["critic"].shape[-1] if "critic" in obs else None,
        "action": env.action_dim,
        "observation.qpos": env.nq,
        "observation.qvel": env.nv,
    }
    for name, width in expect.items():
        if width is None or name not in features:
            continue
        if list(features[name]["shape"]) != [width]:
            raise DatasetError(
                f"{info_path}: feature {name!r} has shape {list(features[name]['shape'])}, "
                f"the env's is [{width}] ({env.task_id})"
            )


def _read_episodes(root: Path, total_e: int, total_f: int) -> dict[str, Any]:
    path = root / layout.EPISODES_PATH
    if not path.is_file():
        raise DatasetError(f"{path}: missing; every LeRobot v3.0 dataset has its episode table there")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise DatasetError(f"{path}: not a readable parquet file ({e})") from None
    for name in EPISODE_COLUMNS:
        if name not in table.column_names:
            raise DatasetError(f"{path}: column {name!r} missing")
    if table.num_rows < total_e:
        raise DatasetError(f"{path}: {table.num_rows} episodes, info.json counts {total_e}")
    table = table.slice(0, total_e)  # rows past info.json's count were never committed
    out: dict[str, Any] = {}
    for name in table.column_names:
        col = table[name]
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
            out[name] = torch.from_numpy(np.asarray(col.to_numpy(zero_copy_only=False)).copy())
        else:
            out[name] = col.to_pylist()
    ep, a, b, n = out["episode_index"], out["dataset_from_index"], out["dataset_to_index"], out["length"]
    if total_e:
        if not torch.equal(ep, torch.arange(total_e)):
            raise DatasetError(f"{path}: column 'episode_index' is not 0..{total_e - 1} in order")
        if int(a[0]) != 0 or not torch.equal(a[1:], b[:-1]) or int(b[-1]) != total_f:
            raise DatasetError(
                f"{path}: columns 'dataset_from_index'/'dataset_to_index' do not tile 0..{total_f} "
                "episode after episode"
            )
        if not torch.equal(b - a, n):
            raise DatasetError(f"{path}: column 'length' differs from dataset_to_index - dataset_from_index")
    elif total_f:
        raise DatasetError(f"{path}: no episodes, but info.json counts {total_f} frames")
    return out


def _expected_type(ft: dict) -> pa.DataType:
    shape = list(ft["shape"])
    if len(shape) != 1:
        raise DatasetError(f"feature of shape {shape}: only scalar and vector features are read")
    return layout.arrow_type(ft)


def _read_frames(root: Path, info: dict, episodes: dict, columns: list[str], total_f: int) -> dict[str, torch.Tensor]:
    features = info["features"]
    files: list[tuple[int, int]] = []
    if total_f:
        for c, f in zip(episodes["data/chunk_index"].tolist(), episodes["data/file_index"].tolist(), strict=True):
            if not files or files[-1] != (c, f):
                files.append((c, f))
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    seen = 0
    for c, f in files:
        path = root / info["data_path"].format(chunk_index=c, file_index=f)
        if not path.is_file():
            raise DatasetError(f"{path}: missing; meta/episodes points to it")
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise DatasetError(f"{path}: not a readable parquet file ({e})") from None
        for col in columns:
            if col not in schema.names:
                raise DatasetError(f"{path}: column {col!r} missing (info.json lists it as a feature)")
            want, got = _expected_type(features[col]), schema.field(col).type
            listed = pa.types.is_list(got) and pa.types.is_fixed_size_list(want)  # LeRobot may write plain lists
            if got != want and not (listed and got.value_type == want.value_type):
                raise DatasetError(
                    f"{path}: column {col!r} is {got}, info.json's feature says {want} "
                    f"(dtype {features[col]['dtype']}, shape {list(features[col]['shape'])})"
                )
        table = pq.read_table(path, columns=columns)
        index = column_to_numpy(table["index"], 1)
        keep = int(np.searchsorted(index, total_f))  # rows past info.json's total were never committed
        if not np.array_equal(index[:keep], np.arange(seen, seen + keep)):
            raise DatasetError(f"{path}: column 'index' does not continue at {seen} in order")
        table = table.slice(0, keep)
        for col in columns:
            width = int(features[col]["shape"][0])
            try:
                x = column_to_numpy(table[col], width)
            except ValueError:  # a variable-length list column whose rows do not all hold `width` values
                raise DatasetError(f"{path}: column {col!r} has rows that are not {width} values long") from None
            if x.ndim == 2 and x.shape[1] != width:
                raise DatasetError(f"{path}: column {col!r} has rows of {x.shape[1]} values, its shape is [{width}]")
            parts[col].append(x)
        seen += keep
    if seen != total_f:
        raise DatasetError(f"{root / layout.INFO_PATH}: total_frames is {total_f}, the data files hold {seen}")
    out = {}
    for col in columns:
        ft = features[col]
        shape = (0, int(ft["shape"][0])) if list(ft["shape"]) != [1] else (0,)
        x = np.concatenate(parts[col]) if parts[col] else np.zeros(shape, dtype=ft["dtype"])
        out[col] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.dtype(ft["dtype"])))
    if "episode_index" in out and total_f:
        expect = torch.repeat_interleave(torch.arange(len(episodes["length"])), episodes["length"])
        if not torch.equal(out["episode_index"], expect):
            raise DatasetError(f"{root}: data column 'episode_index' disagrees with meta/episodes' ranges")
    return out
