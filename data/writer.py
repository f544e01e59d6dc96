"""`DatasetWriter`: appends complete episodes to a LeRobot v3.0 dataset, safe against being killed.

Episodes are buffered in memory and committed in groups. A commit:

1. writes the frames to a data file: the last one again with the new rows appended while it stays
   under ``data_files_size_in_mb``, else the next ``file-XXX.parquet``;
2. rewrites ``meta/episodes/chunk-000/file-000.parquet`` with the new episodes' rows;
3. rewrites ``meta/stats.json``;
4. rewrites ``meta/info.json`` with the new totals: the commit point.

Each file goes through a temp file and a rename, so it is always whole. A process killed between
two steps leaves files *ahead* of ``info.json`` (rows and episodes past its totals, or a data file no
committed episode points to); :func:`worldloop.data.load` reads only what ``info.json`` counts, and
a resumed writer (``resume=True``) first cuts those files back to it.

``commit(wait=False)`` runs the commit on one background thread (pyarrow and numpy release the GIL,
so it overlaps with stepping); at most one commit is in flight, and the next ``commit`` or
:meth:`DatasetWriter.flush` waits for it and raises what it raised.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from worldloop.data import layout
from worldloop.data.layout import DatasetError

PARQUET_OPTIONS: dict[str, Any] = {"compression": "snappy", "use_dictionary": ["task_index"], "write_statistics": False}
"""How data files are written: snappy as LeRobot does; dictionary encoding and column statistics are
skipped (float columns gain nothing from them and they cost write time)."""

EPISODE_COLUMNS: dict[str, pa.DataType] = {
    "episode_index": pa.int64(),
    "tasks": pa.list_(pa.string()),
    "length": pa.int64(),
    "data/chunk_index": pa.int64(),
    "data/file_index": pa.int64(),
    "dataset_from_index": pa.int64(),
    "dataset_to_index": pa.int64(),
    "meta/episodes/chunk_index": pa.int64(),
    "meta/episodes/file_index": pa.int64(),
}
"""The columns of ``meta/episodes`` LeRobot reads; a writer adds its own after them."""


class RunningStats:
    """Count, mean, M2, min and max of a feature, merged batch by batch (Chan et al.) in float64."""

    def __init__(self, width: int) -> None:
        self.count = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)
        self.min = np.full(width, np.inf)
        self.max = np.full(width, -np.inf)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        n = len(x)
        if n == 0:
            return
        mean = x.mean(0)
        m2 = ((x - mean) ** 2).sum(0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total
        self.min = np.minimum(self.min, x.min(0))
        self.max = np.maximum(self.max, x.max(0))

    def to_json(self) -> dict[str, list]:
        std = np.sqrt(np.maximum(self.m2 / max(self.count, 1), 0.0))
        return {
            "min": self.min.tolist(),
            "max": self.max.tolist(),
            "mean": self.mean.tolist(),
            "std": std.tolist(),
            "count": [int(self.count)],
        }


def column_to_numpy(col: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """A data column as numpy: ``(rows,)`` for scalars, ``(rows, width)`` for fixed-size lists."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):  # variable-length lists: check each row
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if len(lengths) and not (lengths == width).all():
            raise ValueError(f"list rows of {sorted(set(lengths.tolist()))[:5]} values, expected {width}")
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        values = col.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(col), width)
    return col.to_numpy(zero_copy_only=False)


def numpy_to_column(x: np.ndarray, ft: dict[str, Any]) -> pa.Array:
    t = layout.ARROW_TYPES[ft["dtype"]]
    x = np.ascontiguousarray(x, dtype=np.dtype(ft["dtype"]))
    if list(ft["shape"]) == [1]:
        return pa.array(x.reshape(-1), t)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), t), int(ft["shape"][0]))


class DatasetWriter:
    """Append complete episodes to the dataset at ``root``.

    Args:
        root: dataset directory; created if missing. One that already holds a dataset is refused
            unless ``resume`` is set.
        features: the frame features other than LeRobot's index columns, ``{name: {"dtype", "shape",
            "names"}}`` in column order (the writer adds ``timestamp``, ``frame_index``,
            ``episode_index``, ``index``, ``task_index``).
        fps: policy steps per second of simulated time.
        robot_type: ``info.json``'s ``robot_type``.
        task: the task description (``meta/tasks.parquet``; every episode has this one task).
        episode_columns: worldloop's per-episode columns after LeRobot's, ``{name: arrow type}``.
        worldloop: the ``worldloop`` block of ``info.json`` (task id, config, policy, ...).
        data_files_size_in_mb: size at which a data file rolls over [MiB].
        resume: continue the dataset at ``root``: cut whatever a killed collection left past the
            last commit, then append. Its features must equal ``features``.

    Raises:
        DatasetError: ``root`` holds a dataset and ``resume`` is false, or holds another layout.
        BlockingIOError: another process is writing to ``root``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        features: dict[str, dict[str, Any]],
        fps: float,
        robot_type: str | None,
        task: str,
        episode_columns: dict[str, pa.DataType],
        worldloop: dict[str, Any],
        data_files_size_in_mb: int = layout.DATA_FILES_SIZE_IN_MB,
        resume: bool = False,
    ) -> None:
        self.root = Path(root)
        for name in features:
            layout.check_feature_name(name)
        clash = sorted(set(features) & set(layout.INDEX_FEATURES))
        if clash:
            raise ValueError(f"features {clash} are LeRobot's index columns, which the writer fills in")
        if data_files_size_in_mb < 1:
            raise ValueError(f"data_files_size_in_mb must be >= 1, got {data_files_size_in_mb}")
        self.features = {**features, **layout.INDEX_FEATURES}
        self.schema = layout.data_schema(self.features)
        self.fps = fps
        self.robot_type = robot_type
        self.task = task
        self.worldloop = worldloop
        self.limit_bytes = data_files_size_in_mb * 2**20
        self.data_files_size_in_mb = data_files_size_in_mb
        self.episode_schema = pa.schema([*EPISODE_COLUMNS.items(), *episode_columns.items()])
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.root / ".worldloop.lock", "w")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise BlockingIOError(f"{self.root}: another process is writing this dataset") from None
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_rows: list[dict[str, Any]] = []
        self._pending_bytes = 0
        self._job: Future | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.stats = {name: RunningStats(int(ft["shape"][0])) for name, ft in self.features.items()}
        info_path = self.root / layout.INFO_PATH
        if info_path.exists():
            if not resume:
                n = layout.read_json(info_path, "info").get("total_episodes", "?")
                self._release()
                raise DatasetError(
                    f"{self.root} already holds a dataset ({n} episodes): continue it with resume=True (--resume) "
                    "or choose another directory"
                )
            self._resume()
        else:
            self._create()

    # ------------------------------------------------------------------ state
    @property
    def total_episodes(self) -> int:
        """Episodes committed (what a reader sees; call :meth:`flush` first to count a commit in flight)."""
        return self._episodes.num_rows

    @property
    def total_frames(self) -> int:
        """Frames committed (see :attr:`total_episodes`)."""
        return self._frames

    @property
    def added_episodes(self) -> int:
        """Episodes in the dataset once everything added so far is committed."""
        return self._next_episode

    @property
    def episodes(self) -> pa.Table:
        """``meta/episodes`` as committed."""
        return self._episodes

    def _create(self) -> None:
        self._episodes = self.episode_schema.empty_table()
        self._frames = self._next_frame = self._next_episode = 0
        self._last: tuple[int, int] | None = None
        layout.write_parquet_atomic(self.root / layout.TASKS_PATH, layout.tasks_table([self.task]))
        self._write_meta()

    def _resume(self) -> None:
        """Cut files back to the last commit (``info.json``'s totals) and load the writer's state."""
        root = self.root
        for tmp in [*root.glob("meta/**/*" + layout.TMP_SUFFIX), *root.glob("data/**/*" + layout.TMP_SUFFIX)]:
            tmp.unlink()
        info = layout.read_json(root / layout.INFO_PATH, "info")
        features = {k: {**v, "shape": list(v["shape"])} for k, v in info.get("features", {}).items()}
        if features != self.features:
            diff = sorted(k for k in set(features) | set(self.features) if features.get(k) != self.features.get(k))
            raise DatasetError(
                f"{root / layout.INFO_PATH}: features differ from this collection's in column(s) {diff}; "
                "resume with the same task, config and policy, or write to another directory"
            )
        total_e, total_f = int(info["total_episodes"]), int(info["total_frames"])
        ep_path = root / layout.EPISODES_PATH
        episodes = pq.read_table(ep_path) if ep_path.exists() else self.episode_schema.empty_table()
        if episodes.num_rows < total_e:
            raise DatasetError(
                f"{ep_path}: {episodes.num_rows} episodes, but {root / layout.INFO_PATH} counts {total_e}"
            )
        missing = [c for c in self.episode_schema.names if c not in episodes.column_names]
        if missing:
            raise DatasetError(f"{ep_path}: missing column(s) {missing}")
        episodes = episodes.select(self.episode_schema.names).slice(0, total_e).cast(self.episode_schema)
        files: dict[tuple[int, int], int] = {}
        for c, f, n in zip(
            episodes["data/chunk_index"].to_pylist(),
            episodes["data/file_index"].to_pylist(),
            episodes["length"].to_pylist(),
            strict=True,
        ):
            files[(c, f)] = files.get((c, f), 0) + n
        for path in sorted(root.glob("data/chunk-*/file-*.parquet")):
            key = (int(path.parent.name.split("-")[1]), int(path.stem.split("-")[1]))
            if key not in files:
                path.unlink()  # written by a commit that never reached info.json
        for (c, f), rows in sorted(files.items()):
            path = layout.data_file(root, c, f)
            if not path.exists():
                raise DatasetError(f"{path}: missing, but committed episodes point to it")
            have = pq.read_metadata(path).num_rows
            if have < rows:
                raise DatasetError(f"{path}: {have} rows, but committed episodes need {rows}")
            if have > rows:  # rows appended by a commit that never reached info.json
                layout.write_parquet_atomic(path, pq.read_table(path).slice(0, rows), **PARQUET_OPTIONS)
            table = pq.read_table(path, columns=list(self.features))
            for name, ft in self.features.items():
                self.stats[name].add(column_to_numpy(table[name], int(ft["shape"][0])))
        self._episodes = episodes
        self._frames = self._next_frame = total_f
        self._next_episode = total_e
        self._last = max(files) if files else None
        if sum(files.values()) != total_f:
            raise DatasetError(f"{ep_path}: episode lengths add up to {sum(files.values())}, info.json says {total_f}")
        self._write_meta()

    # ------------------------------------------------------------------ appending
    def add(self, frames: dict[str, np.ndarray], lengths: np.ndarray, episode_values: dict[str, Any]) -> None:
        """Buffer ``k`` complete episodes (the arrays are kept, not copied).

        Args:
            frames: every feature given at construction, ``(sum(lengths), width)`` or ``(sum(lengths),)``
                arrays, episode after episode.
            lengths: ``(k,)`` frames of each episode (>= 1).
            episode_values: every per-episode column given at construction, ``k`` values each.
        """
        lengths = np.asarray(lengths, dtype=np.int64)
        k, m = len(lengths), int(lengths.sum())
        if k == 0:
            return
        if (lengths < 1).any():
            raise ValueError(f"episode lengths must be >= 1, got {lengths.tolist()}")
        for name in self.features:
            if name not in layout.INDEX_FEATURES and len(frames[name]) != m:
                raise ValueError(f"feature {name!r}: {len(frames[name])} rows for episodes of {m} frames")
        first_ep, first_frame = self._next_episode, self._next_frame
        self._pending.append({"frames": frames, "lengths": lengths, "first_ep": first_ep, "first_frame": first_frame})
        self._pending_bytes += sum(frames[n].nbytes for n in self.features if n in frames)
        offset = first_frame
        for i in range(k):
            row = {name: episode_values[name][i] for name in self.episode_schema.names if name in episode_values}
            row.update(episode_index=first_ep + i, tasks=[self.task], length=int(lengths[i]))
            row.update(dataset_from_index=offset, dataset_to_index=offset + int(lengths[i]))
            offset += int(lengths[i])
            self._pending_rows.append(row)
        self._next_episode += k
        self._next_frame += m

    def _table(self, part: dict[str, Any]) -> pa.Table:
        """The data rows of one :meth:`add` call, LeRobot's index columns filled in."""
        lengths, m = part["lengths"], int(part["lengths"].sum())
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        frame_index = np.arange(m, dtype=np.int64) - starts
        first_ep, first_frame = part["first_ep"], part["first_frame"]
        index_cols = {
            "timestamp": (frame_index / self.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.repeat(np.arange(first_ep, first_ep + len(lengths), dtype=np.int64), lengths),
            "index": np.arange(first_frame, first_frame + m, dtype=np.int64),
            "task_index": np.zeros(m, dtype=np.int64),
        }
        cols = [
            numpy_to_column(index_cols[name] if name in index_cols else part["frames"][name], ft)
            for name, ft in self.features.items()
        ]
        return pa.Table.from_arrays(cols, schema=self.schema)

    @property
    def pending_bytes(self) -> int:
        """In-memory size of the frames added but not handed to a commit [bytes]."""
        return self._pending_bytes

    def should_commit(self) -> bool:
        """The buffered frames fill a data file."""
        return self._pending_bytes >= self.limit_bytes

    def commit(self, *, wait: bool = True) -> int:
        """Commit the buffered episodes (see the module docstring); returns how many.

        ``wait=False`` runs it on the background thread and returns at once (after waiting for the
        previous commit, if one is still running)."""
        self.flush()
        if not self._pending_rows:
            return 0
        parts, rows = self._pending, self._pending_rows
        self._pending, self._pending_rows, self._pending_bytes = [], [], 0
        if wait:
            self._commit(parts, rows)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worldloop-commit")
            self._job = self._pool.submit(self._commit, parts, rows)
        return len(rows)

    def flush(self) -> None:
        """Wait for a commit in flight; re-raise its error."""
        job, self._job = self._job, None
        if job is not None:
            job.result()

    def _commit(self, parts: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
        new = pa.concat_tables([self._table(p) for p in parts])
        # Whole episodes per file, a file rolling over once it would pass the size limit.
        row_bytes = new.nbytes / max(new.num_rows, 1)
        target, used, merge = self._last, 0.0, False
        if target is None:
            target = (0, 0)
        else:
            used = layout.data_file(self.root, *target).stat().st_size
            merge = used < self.limit_bytes
            if not merge:
                target, used = layout.next_file(*target), 0.0
        groups: list[tuple[tuple[int, int], bool, int, int]] = []  # (file, append, first row, rows)
        start = count = 0
        for r in rows:
            size = r["length"] * row_bytes
            if used + size > self.limit_bytes and (count or merge):  # a fresh file takes one episode at least
                if count:
                    groups.append((target, merge, start, count))
                target, used, merge, start, count = layout.next_file(*target), 0.0, False, start + count, 0
            r.update({"data/chunk_index": target[0], "data/file_index": target[1]})
            r.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            used += size
            count += r["length"]
        groups.append((target, merge, start, count))
        for file, append, first, n in groups:  # every data file before the meta that points to them
            path = layout.data_file(self.root, *file)
            part = new.slice(first, n)
            table = pa.concat_tables([pq.read_table(path, schema=self.schema), part]) if append else part
            layout.write_parquet_atomic(path, table, **PARQUET_OPTIONS)
        for name, ft in self.features.items():
            self.stats[name].add(column_to_numpy(new[name], int(ft["shape"][0])))
        add = pa.Table.from_pylist(rows, schema=self.episode_schema)
        self._episodes = pa.concat_tables([self._episodes, add])
        self._frames += new.num_rows
        self._last = target
        self._write_meta()

    def _write_meta(self) -> None:
        root = self.root
        layout.write_parquet_atomic(root / layout.EPISODES_PATH, self._episodes, compression="snappy")
        stats = {name: s.to_json() for name, s in self.stats.items() if s.count > 0}
        layout.write_json_atomic(root / layout.STATS_PATH, _finite(stats))
        info = layout.info_dict(
            fps=self.fps,
            robot_type=self.robot_type,
            features=self.features,
            total_episodes=self.total_episodes,
            total_frames=self._frames,
            data_files_size_in_mb=self.data_files_size_in_mb,
            worldloop=self.worldloop,
        )
        layout.write_json_atomic(root / layout.INFO_PATH, info)  # last: the commit point

    def close(self) -> None:
        """Wait for a commit in flight and release the directory (episodes added but never committed
        are dropped)."""
        try:
            self.flush()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
            self._release()

    def _release(self) -> None:
        if not self._lock.closed:
            with contextlib.suppress(OSError):
                (self.root / ".worldloop.lock").unlink()
            self._lock.close()


def _finite(x: Any) -> Any:
    """JSON has no inf/nan: a statistic without data is written as null."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
