"""The run directory: the one place that knows its layout (write, read back, find checkpoints).

    <log_root>/<task>/<date_time>[_<run_name>]/      (<task>: the id, ':' as '_', :func:`task_folder`)
        config.json             the resolved train, env and agent config and the backend used
        model_<it>.pt           checkpoints every ``save_interval`` iterations (atomic writes)
        last.pt, best.pt        the latest checkpoint, and the one with the best recent success rate
        events.out.tfevents.*   tensorboard: losses, episode return/length/success, each reward term, fps
        eval.json               success of the final deterministic policy (``worldloop train``)
        play_<backend>.json     success on a backend (``worldloop play``); play.mp4 its video
        exported/               policy.onnx and policy.pt (``worldloop export``)

``config.json`` holds ``{"train": {...}, "env": {...}, "agent": {...}, "backend": "mujoco"}``: the
run's settings, the task config (randomization terms included) and the PPO config as
``dataclasses.asdict`` wrote them; :func:`read_config` rebuilds the dataclasses with :func:`from_dict`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from worldloop.policies.train import TrainCfg

CONFIG = "config.json"
LAST = "last.pt"
BEST = "best.pt"
EVAL = "eval.json"
VIDEO = "play.mp4"
EXPORTED = "exported"

T = TypeVar("T")


class CheckpointError(ValueError):
    """A file that is not a readable worldloop checkpoint, or a run without the checkpoint asked for."""


class ConfigError(ValueError):
    """A run configuration that cannot be used: a ``config.json`` that does not match the code, or a
    resumed run asked to change more than its budget."""


# ---- creating and describing a run ------------------------------------------------------------
def new_run_dir(log_root: str | Path, task: str, run_name: str = "") -> Path:
    """``<log_root>/<task>/<date_time>[_<run_name>]`` (not created: :func:`write_config` does that); the
    task folder is :func:`task_folder` of the id."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    return Path(log_root) / task_folder(task) / (stamp + (f"_{run_name}" if run_name else ""))


def task_folder(task: str) -> str:
    """The folder name of a task's runs: the id with the characters some file systems refuse
    (``<>:"/\\|?*``) as ``_``: ``isaaclab:Isaac-Cartpole-v0`` -> ``isaaclab_Isaac-Cartpole-v0``; other ids
    unchanged. The run's ``config.json`` keeps the id itself."""
    return re.sub(r'[<>:"/\\|?*]', "_", task)


def write_config(run_dir: str | Path, cfg: TrainCfg, *, backend: str) -> Path:
    """Create the run directory and save the resolved config beside the checkpoints to come."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    train = dataclasses.asdict(cfg)
    data = {"train": train, "env": train.pop("env"), "agent": train.pop("agent"), "backend": backend}
    return _write_json(run_dir / CONFIG, data)


def read_config(run_dir: str | Path) -> TrainCfg:
    """The :class:`TrainCfg` (env and agent config included) saved in a run directory.

    Raises:
        FileNotFoundError: no ``config.json`` (not a run directory).
        KeyError: the saved task id is not registered.
        ConfigError: a saved field the code does not know (the message names the file and the fields), or a
            file that is not valid JSON.
    """
    from worldloop.policies.ppo import PPOCfg
    from worldloop.policies.train import TrainCfg
    from worldloop.tasks import get_task

    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(_not_a_run(run_dir))
    saved = _load_json(path)
    train = dict(saved["train"])
    # Runs saved before the agent had its own section kept it inside "train".
    agent = saved.get("agent", train.pop("agent", {}))
    train.pop("agent", None)
    env = from_dict(get_task(train["task"]).cfg_cls, saved["env"], where=f"{path} (env)")
    return from_dict(
        TrainCfg, train, where=f"{path} (train)", env=env, agent=from_dict(PPOCfg, agent, where=f"{path} (agent)")
    )


def read_backend(run_dir: str | Path) -> str:
    """The physics backend a run trained on (``config.json``'s ``backend``: ``"mujoco"`` or ``"newton"``).

    Raises:
        FileNotFoundError: no ``config.json`` (not a run directory).
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(_not_a_run(run_dir))
    return _load_json(path)["backend"]


def _not_a_run(run_dir: str | Path) -> str:
    """The message for a directory without ``config.json``, naming the runs found inside it (a task's folder
    of runs) or beside it (a mistyped date)."""
    d = Path(run_dir)
    msg = f"{d / CONFIG} not found: is {run_dir} a worldloop run directory?"
    for where, parent in (("in it", d), ("beside it", d.parent)):
        runs = sorted(p.parent.name for p in parent.glob(f"*/{CONFIG}")) if parent.is_dir() else []
        if runs:
            shown = ", ".join(runs[-5:]) + (f" (and {len(runs) - 5} more)" if len(runs) > 5 else "")
            return f"{msg} Runs {where} ({parent}): {shown}"
    return msg


def _load_json(path: Path) -> dict:
    """A run's JSON file; a truncated or edited file raises ConfigError naming it."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON ({e}): the file is corrupt or was cut short") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds a {type(data).__name__}, not a run's JSON object")
    return data


def write_eval(run_dir: str | Path, summary: Mapping[str, Any]) -> Path:
    """``eval.json``: the training summary and the final policy's success."""
    return _write_json(Path(run_dir) / EVAL, summary)


def write_play(run_dir: str | Path, backend: str, report: Mapping[str, Any]) -> Path:
    """``play_<backend>.json``: a ``worldloop play`` evaluation on ``backend``."""
    return _write_json(Path(run_dir) / f"play_{backend}.json", report)


def _write_json(path: Path, data: Mapping[str, Any]) -> Path:
    # Temp file + rename: a process killed mid-write leaves the old file or none, never half of one.
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
    return path


def remove_temp_files(run_dir: str | Path) -> list[Path]:
    """Delete what writes killed before their rename left (``.<name>.tmp<pid>``); returns them."""
    temps = [p for p in Path(run_dir).glob(".*.tmp*") if p.is_file()]
    for p in temps:
        p.unlink()
    return temps


# ---- checkpoints --------------------------------------------------------------------------------
def checkpoint_name(iteration: int) -> str:
    """``model_<it>.pt``, the name rsl-rl's runner gives the checkpoint of an iteration."""
    return f"model_{iteration}.pt"


def latest_checkpoint(run_dir: str | Path) -> Path:
    """``last.pt`` of a run, else its highest ``model_<it>.pt``."""
    run_dir = Path(run_dir)
    if (run_dir / LAST).is_file():
        return run_dir / LAST
    models = sorted(run_dir.glob("model_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    if not models:
        raise CheckpointError(f"no checkpoint ({LAST} or model_<it>.pt) in {run_dir}")
    return models[-1]


def find_checkpoint(run_dir: str | Path, checkpoint: str = "best") -> Path:
    """A run's checkpoint: ``"best"`` (``best.pt``, else the latest), ``"last"`` (``last.pt``, else the
    highest ``model_<it>.pt``), a file name in the run (``"model_300.pt"``) or a path."""
    run_dir = Path(run_dir)
    if checkpoint == "best" and (run_dir / BEST).is_file():
        return run_dir / BEST
    if checkpoint in ("best", "last"):
        return latest_checkpoint(run_dir)
    for path in (run_dir / checkpoint, Path(checkpoint)):
        if path.is_file():
            return path
    have = sorted(p.name for p in run_dir.glob("*.pt"))
    raise CheckpointError(
        f"checkpoint {checkpoint!r} not found in {run_dir} nor as a path; use best, last, a path or one of {have}"
    )


# ---- dict -> dataclass -------------------------------------------------------------------------
def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "", **given: Any) -> T:
    """Rebuild config dataclass ``cls`` from its ``dataclasses.asdict`` form as JSON holds it: nested
    dataclasses (``dict[str, RandTerm]`` values too) from dicts, tuples from lists. Fields in ``given``
    are passed as they are.

    Raises:
        ConfigError: a key that is no field of ``cls``, or a required field missing (``where`` names
            the file).
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    where = where or cls.__name__
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(
            f"{where}: {cls.__name__} has no field(s) {unknown} (saved by another version?); fields: {', '.join(names)}"
        )
    kwargs = {k: _value(hints[k], v, where) for k, v in data.items() if k not in given}
    try:
        return cls(**kwargs, **given)
    except TypeError as e:
        raise ConfigError(f"{where}: cannot build {cls.__name__}: {e}") from None


def _value(tp: Any, v: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if v is None:
            return None
        fits = [a for a in args if a is not type(None) and _fits(a, v)]
        return _value(fits[0], v, where) if fits else v
    if dataclasses.is_dataclass(tp) and isinstance(v, Mapping):
        return from_dict(tp, v, where=where)
    if origin is dict and isinstance(v, Mapping):
        return {k: _value(args[1], x, where) for k, x in v.items()} if args else dict(v)
    if origin is tuple and isinstance(v, list | tuple):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], x, where) for x in v)
        return tuple(_value(a, x, where) for a, x in zip(args, v, strict=False)) if args else tuple(v)
    if origin is list and isinstance(v, list | tuple):
        return [_value(args[0], x, where) for x in v] if args else list(v)
    if tp is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def _fits(tp: Any, v: Any) -> bool:
    """Whether a JSON value has the shape of type ``tp`` (to pick a member of a union)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) or origin is dict:
        return isinstance(v, Mapping)
    if origin in (tuple, list):
        return isinstance(v, list | tuple)
    if origin is typing.Literal:
        return v in typing.get_args(tp)
    if tp is float:
        return isinstance(v, int | float) and not isinstance(v, bool)
    if isinstance(tp, type):
        return isinstance(v, tp)
    return True
