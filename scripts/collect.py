"""``worldloop collect``: complete episodes of a policy as a LeRobot v3.0 dataset.

    worldloop collect --task Franka-Lift-v0 --policy expert --episodes 1000 --out datasets/lift
    worldloop collect --task Franka-Lift-v0 --policy random --episodes 200 --out datasets/lift_rand --rand obs_noise=off
    worldloop collect --policy runs/Franka-Lift-v0/<date_time>@best --episodes 500 --out datasets/lift_ppo
    worldloop collect --out datasets/lift --resume [--episodes 2000]        # continue a killed collection
    worldloop collect --task Franka-Lift-v0 --num-envs 1024 --compare-rounds 3   # cost of writing

The task is chosen first (``--task``; with a run's policy, the run's task; with ``--resume``, the
dataset's), then its config fields are options (``--env.*``, ``--rand``). The Python API is
:func:`worldloop.data.collect`; a trained run's policy is loaded here (the ``data`` package knows no
learner).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from worldloop.data import DatasetError, collect, task_config
from worldloop.data.collect import unused_seed
from worldloop.envs.task import TaskCfg
from worldloop.policies.run_dir import ConfigError
from worldloop.policies.train import Backend
from worldloop.scripts.rand_option import RAND_HELP, apply_rand_options, pop_rand_options
from worldloop.tasks import get_task

C = TypeVar("C", bound=TaskCfg)


@dataclass(kw_only=True)
class CollectCfg(Generic[C]):
    """Collect complete episodes of a policy into a LeRobot v3.0 dataset."""

    out: str = ""
    """Dataset directory (created; an existing dataset needs --resume)."""
    task: str = ""
    """Task id (``worldloop list``); taken from the run or the dataset with a run's policy or --resume."""
    policy: str = "expert"
    """expert (the task's scripted expert), random (uniform actions), or a trained run RUN_DIR[@CHECKPOINT]
    (checkpoint best, last or model_<it>.pt; default best)."""
    episodes: int = 1000
    """Episodes the dataset holds at the end (with --resume: in total)."""
    num_envs: int | None = None
    """Envs stepped together; default min(episodes, 1024) (with --resume: the dataset's)."""
    backend: Backend = "auto"
    """Physics backend."""
    seed: int = 0
    """Env seed (a resumed dataset continues with a seed it has not used)."""
    resume: bool = False
    """Continue the dataset at --out with its task, config and policy."""
    file_size_mb: int = 100
    """[MiB] size at which data files roll over (LeRobot's data_files_size_in_mb)."""
    commit_interval_s: float = 30.0
    """[s] commit collected episodes at least this often."""
    action_noise: float = 0.0
    """Std of Gaussian noise added to each action before it is executed and recorded: with the expert,
    demonstrations of recovering from drift for behaviour cloning (DART)."""
    compare_rounds: int = 0
    """Instead of keeping a dataset: alternate this many rounds of collection (4 episodes per env, into a
    temporary directory) with the same Loop without writing, and print the frames/s of both (JSON)."""
    env: C = field(default_factory=lambda: TaskCfg(scene=""))  # type: ignore[assignment]
    """The task's config (reward weights, randomization, action space, ...)."""


def parse(argv: Sequence[str] | None = None) -> CollectCfg:
    """The :class:`CollectCfg` of a ``worldloop collect`` command line (without the command name).

    Raises:
        ConfigError: no --task, a malformed --rand, or --rand/--env with --resume or a run's policy.
        KeyError: an unknown task id.
    """
    import tyro

    rand, argv = pop_rand_options(list(sys.argv[1:] if argv is None else argv))
    pre = argparse.ArgumentParser(prog="worldloop collect", add_help=False, allow_abbrev=False)
    pre.add_argument("--task", default="")
    pre.add_argument("--policy", default="expert")
    pre.add_argument("--out", default="")
    pre.add_argument("--resume", action="store_true")
    known, _ = pre.parse_known_args(argv)
    help_only = any(a in ("-h", "--help") for a in argv)
    env_args = [a for a in argv if a.startswith("--env.")]
    if known.resume:
        if rand or env_args:
            raise ConfigError("--resume continues the dataset with its saved task config; drop --rand and --env.*")
        env_cfg = task_config(known.out)
        stored = json.loads((Path(known.out) / "meta/info.json").read_text())["worldloop"]
        task = stored["task"]
        for flag, given, have in (("--task", known.task, task), ("--policy", known.policy, stored["policy"])):
            if given and given != have and not (flag == "--policy" and given == "expert"):
                raise ConfigError(f"--resume {known.out}: the dataset was collected with {flag} {have}, not {given}")
        default = CollectCfg(
            out=known.out, task=task, policy=stored["policy"], num_envs=stored.get("num_envs"), env=env_cfg
        )
    elif _is_run(known.policy):
        if rand or env_args:
            raise ConfigError(
                f"--policy {known.policy}: a run's policy collects with the run's config; drop --rand and --env.*"
            )
        default = CollectCfg(task=known.task, env=TaskCfg(scene=""))
    else:
        if not known.task:
            if help_only:
                return tyro.cli(CollectCfg[TaskCfg], args=argv, prog="worldloop collect", description=_description(),
                                config=(tyro.conf.FlagCreatePairsOff,))  # fmt: skip
            raise ConfigError(
                "--task is required (worldloop list shows the tasks), unless --resume or --policy RUN_DIR"
            )
        env_cfg = get_task(known.task).cfg_cls()
        if rand:
            env_cfg = dataclasses.replace(env_cfg, randomization=apply_rand_options(env_cfg.randomization, rand))
        default = CollectCfg(task=known.task, env=env_cfg)
    cfg = tyro.cli(
        CollectCfg[type(default.env)],
        default=default,
        args=argv,
        prog="worldloop collect",
        description=_description(),
        config=(tyro.conf.FlagCreatePairsOff,),
    )
    cfg = dataclasses.replace(cfg, resume=known.resume)  # read above: the defaults came from the dataset
    if not cfg.out and not cfg.compare_rounds:
        raise ConfigError("--out DIR is required: the directory the dataset is written to")
    return cfg


def _description() -> str:
    return (
        "Collect complete episodes of a policy into a LeRobot v3.0 dataset (worldloop.data.load reads it "
        "back). --task is read first: its config is --env.*.\n\n" + f"--rand NAME.FIELD=VALUE (repeatable): {RAND_HELP}"
    )


def _is_run(policy: str) -> bool:
    return policy not in ("expert", "random")


def _split_run(policy: str) -> tuple[str, str]:
    """``RUN_DIR[@CHECKPOINT]`` -> (run directory, checkpoint)."""
    run, sep, ckpt = policy.rpartition("@")
    if not sep or not run:
        return policy, "best"
    return run, ckpt


def run(cfg: CollectCfg) -> dict:
    """Collect (or compare throughput) as ``cfg`` says; returns the summary printed as JSON."""
    if cfg.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {cfg.episodes}")
    if cfg.compare_rounds:
        from worldloop.data.bench import compare_throughput

        if _is_run(cfg.policy):
            raise ConfigError("--compare-rounds measures the expert or random policy; use --policy expert or random")
        res = compare_throughput(
            cfg.task,
            num_envs=cfg.num_envs or 1024,
            rounds=cfg.compare_rounds,
            policy=cfg.policy,
            backend=cfg.backend,
            seed=cfg.seed,
            cfg=cfg.env,
        )
        print(json.dumps(res), flush=True)
        return res
    common = dict(
        episodes=cfg.episodes,
        resume=cfg.resume,
        data_files_size_in_mb=cfg.file_size_mb,
        commit_interval_s=cfg.commit_interval_s,
        action_noise=cfg.action_noise,
    )
    if _is_run(cfg.policy):
        from worldloop.policies.run_dir import read_config
        from worldloop.policies.train import inference_policy, load_run

        run_path, ckpt = _split_run(cfg.policy)
        if cfg.task and read_config(run_path).task != cfg.task:
            raise ConfigError(f"--policy {cfg.policy} was trained on {read_config(run_path).task}, not {cfg.task}")
        seed = unused_seed(cfg.out, cfg.seed) if cfg.resume else cfg.seed
        env, runner = load_run(
            run_path,
            checkpoint=ckpt,
            num_envs=cfg.num_envs or min(cfg.episodes, 1024),
            backend=None if cfg.backend == "auto" else cfg.backend,
            seed=seed,
        )
        try:
            summary = collect(env, cfg.out, policy=inference_policy(runner, env.num_envs), policy_name=cfg.policy,
                              **common)  # fmt: skip
        finally:
            env.close()
    else:
        summary = collect(
            cfg.task,
            cfg.out,
            policy=cfg.policy,
            num_envs=cfg.num_envs,
            backend=cfg.backend,
            seed=cfg.seed,
            cfg=cfg.env,
            **common,
        )
    out = dataclasses.asdict(summary)
    out.pop("rss_mib")
    print(json.dumps(out), flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    """``worldloop collect``: parse, collect, print the summary as one JSON line."""
    try:
        return run(parse(argv))
    except DatasetError as e:
        raise ConfigError(str(e)) from None


if __name__ == "__main__":
    import os

    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        main()
    except (ConfigError, KeyError, FileNotFoundError) as e:
        sys.exit(f"worldloop collect: error: {e.args[0] if isinstance(e, KeyError) and e.args else e}")
