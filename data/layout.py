"""The LeRobot v3.0 dataset layout, written and read with pyarrow (no ``lerobot`` dependency).

A dataset directory holds::

    meta/info.json                              codebase_version "v3.0", fps, robot_type, features, totals
    meta/stats.json                             mean, std, min, max, count of every numeric feature
    meta/tasks.parquet                          task (the index) -> task_index
    meta/episodes/chunk-000/file-000.parquet    one row per episode: where its frames are, and worldloop's columns
    data/chunk-XXX/file-YYY.parquet             one row per frame (policy step)

as LeRobot's ``datasets/utils.py`` lays it out. ``meta/info.json`` carries a ``worldloop`` block of
its own (task id, resolved task config, backend, policy) that LeRobot's tools ignore.

Every file is written to ``<name>.tmp``, flushed to disk and renamed over its final name, so a
reader sees a file either whole or not at all; ``meta/info.json`` is written last and is the commit
point (see :mod:`worldloop.data.writer`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
"""Files per ``chunk-XXX`` folder (LeRobot's ``DEFAULT_CHUNK_SIZE``)."""
DATA_FILES_SIZE_IN_MB = 100
"""Size at which a data file rolls over to the next (LeRobot's ``DEFAULT_DATA_FILE_SIZE_IN_MB``)."""
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TMP_SUFFIX = ".tmp"
"""Suffix of a file being written; never read, removed by a resumed collection."""

INDEX_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
"""The columns every LeRobot dataset has (LeRobot's ``DEFAULT_FEATURES``)."""

ARROW_TYPES = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}


class DatasetError(ValueError):
    """A dataset that is not in the layout, or not the one asked for; the message names the file
    and the column."""


def check_feature_name(name: str) -> str:
    """LeRobot refuses feature names with a ``/`` (it flattens nested keys with ``/``)."""
    if "/" in name:
        raise ValueError(f"feature name {name!r} contains '/', which the LeRobot format does not allow")
    return name


def feature(dtype: str, width: int, names: list[str] | None = None) -> dict[str, Any]:
    """A ``features`` entry: ``{"dtype", "shape": [width], "names"}``."""
    if dtype not in ARROW_TYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {list(ARROW_TYPES)}")
    if names is not None and len(names) != width:
        raise ValueError(f"{len(names)} names for a feature of width {width}")
    return {"dtype": dtype, "shape": [int(width)], "names": names}


def arrow_type(ft: dict[str, Any]) -> pa.DataType:
    """A feature's column type: a scalar for shape ``[1]`` (as LeRobot stores it), else a fixed-size list."""
    t = ARROW_TYPES[ft["dtype"]]
    shape = list(ft["shape"])
    return t if shape == [1] else pa.list_(t, shape[0])


def data_schema(features: dict[str, dict[str, Any]]) -> pa.Schema:
    """The schema of a data file for ``features`` (in their order)."""
    return pa.schema([pa.field(name, arrow_type(ft), nullable=False) for name, ft in features.items()])


def data_file(root: Path, chunk_index: int, file_index: int) -> Path:
    return root / DATA_PATH.format(chunk_index=chunk_index, file_index=file_index)


def next_file(chunk_index: int, file_index: int) -> tuple[int, int]:
    """The file after ``(chunk_index, file_index)``: ``CHUNKS_SIZE`` files per chunk folder."""
    return (chunk_index + 1, 0) if file_index == CHUNKS_SIZE - 1 else (chunk_index, file_index + 1)


def info_dict(
    *,
    fps: float,
    robot_type: str | None,
    features: dict[str, dict[str, Any]],
    total_episodes: int,
    total_frames: int,
    data_files_size_in_mb: int,
    worldloop: dict[str, Any],
) -> dict[str, Any]:
    """The content of ``meta/info.json``, with LeRobot's keys in LeRobot's order."""
    fps_out: float | int = int(fps) if float(fps).is_integer() else float(fps)
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": int(total_episodes),
        "total_frames": int(total_frames),
        "total_tasks": 1,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": int(data_files_size_in_mb),
        "video_files_size_in_mb": 500,
        "fps": fps_out,
        "splits": {"train": f"0:{int(total_episodes)}"},
        "data_path": DATA_PATH,
        "video_path": None,
        "features": features,
        "worldloop": worldloop,
    }


# ---------------------------------------------------------------------------------------------- atomic files
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_atomic(tmp: Path, final: Path) -> None:
    """Flush ``tmp`` to disk and rename it over ``final`` (atomic on POSIX file systems)."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_text(json.dumps(data, indent=4) + "\n")
    replace_atomic(tmp, path)


def write_parquet_atomic(path: Path, table: pa.Table, **options: Any) -> None:
    """Write ``table`` to ``path`` through a temp file; ``options`` go to ``pyarrow.parquet.write_table``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    pq.write_table(table, tmp, **options)
    replace_atomic(tmp, path)


def tasks_table(tasks: list[str]) -> pa.Table:
    """``meta/tasks.parquet``: as pandas writes LeRobot's DataFrame (``task`` is the index), so that
    ``pandas.read_parquet`` gives LeRobot the frame it expects; pandas is not needed to write it."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
             "metadata": {"encoding": "UTF-8"}}
        ],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }  # fmt: skip
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def read_json(path: Path, what: str) -> Any:
    """A JSON file of a dataset; a missing or malformed one is refused naming it."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing; not a LeRobot v3.0 dataset ({what})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
