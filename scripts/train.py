"""``worldloop train``: PPO (rsl-rl-lib's ``OnPolicyRunner``) on a registered task.

The task is chosen first (``--task``); every field of the run's config is then an option, defaulting
to what the task declares: its config under ``--env.*`` (reward weights and randomization terms
included) and the PPO config under ``--agent.*``::

    worldloop train --task Franka-Lift-v0 --env.weights.lift 8 --env.randomization.object_mass.range 0.5 2.0
    worldloop train --task Franka-Lift-v0 --rand obs_noise=off --agent.learning-rate 3e-4
    worldloop train --resume runs/Franka-Lift-v0/<date_time> --max-iterations 900
    torchrun --nproc-per-node 2 -m worldloop.scripts.train --task Franka-Reach-v0

The Python API is :func:`worldloop.policies.train.train`; the run directory is described in
:mod:`worldloop.policies.run_dir`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence

from worldloop.policies.run_dir import ConfigError
from worldloop.policies.train import TrainCfg, train
from worldloop.scripts.rand_option import RAND_HELP, apply_rand_options, pop_rand_options

DEFAULT_TASK: str = TrainCfg.__dataclass_fields__["task"].default
DESCRIPTION = (
    "Train a PPO policy on a registered task. --task is read first: the task's training defaults and "
    "config are the defaults below, and every field is an option (reward weights --env.weights.NAME, "
    "randomization terms --env.randomization.NAME.FIELD).\n\n" + f"--rand NAME.FIELD=VALUE (repeatable): {RAND_HELP}"
)


def parse(argv: Sequence[str] | None = None) -> TrainCfg:
    """The :class:`TrainCfg` of a ``worldloop train`` command line (without the command name).

    ``--task`` (or ``--resume``) is read first and sets the defaults: the task's training defaults
    (or the resumed run's saved config); ``--rand`` options change the randomization terms; tyro
    parses the rest.

    Raises:
        KeyError: an unknown task id (the message lists the registered ones).
        ConfigError: a malformed ``--rand`` option, or ``--rand`` with ``--resume``.
        SystemExit: tyro's error for an unknown or malformed option, and ``--help``.
    """
    import tyro

    rand, argv = pop_rand_options(list(sys.argv[1:] if argv is None else argv))
    pre = argparse.ArgumentParser(prog="worldloop train", add_help=False, allow_abbrev=False)
    pre.add_argument("--task", default=DEFAULT_TASK)
    pre.add_argument("--resume", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.resume:
        if rand:
            raise ConfigError(f"--resume {known.resume}: a resumed run keeps its saved randomization; drop --rand")
        default = TrainCfg.from_run(known.resume)
    else:
        default = TrainCfg.from_task(known.task)
        if rand:
            terms = apply_rand_options(default.env.randomization, rand)
            default = dataclasses.replace(default, env=dataclasses.replace(default.env, randomization=terms))
    return tyro.cli(
        TrainCfg[type(default.env)],
        default=default,
        args=argv,
        prog="worldloop train",
        description=DESCRIPTION,
    )


def main(argv: Sequence[str] | None = None) -> dict:
    """``worldloop train``: parse the command line, train, return the evaluation summary."""
    return train(parse(argv))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
