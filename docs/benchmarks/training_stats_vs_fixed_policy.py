"""Training success of a PPO run against the success of the policy it has at a given iteration.

Two measurements (BENCHMARKS.md, "Why the training statistics rise while the checkpoints do not"):

- ``live RUN N F``: train again with RUN's saved config (its ``--init`` too) for ``N`` iterations, then run
  ``F`` more iterations of rsl-rl's loop on the same env with the actor frozen (a no-op update), printing the
  training success of every iteration. If the statistics fall to a lower level within one episode length
  once the actor stops changing, the training curve was measuring PPO's fit to episodes in progress.
- ``frozen RUN CHECKPOINT F``: a checkpoint in a fresh env, rsl-rl's loop with a no-op update for ``F``
  iterations (random starting episode lengths, as in training), and the pooled success.

Run from the folder RUN's ``init`` path is relative to. One heavy job at a time.
"""

from __future__ import annotations

import dataclasses
import sys

import torch

from worldloop import make
from worldloop.policies import run_dir
from worldloop.policies.runner import Runner
from worldloop.policies.train import freeze_normalizer, init_actor, load_run, make_runner


def record(runner: Runner, frozen: list[bool]) -> list[tuple[bool, float | None, float]]:
    """Replace ``runner``'s update by one that records the iteration's training statistics first, and is a
    no-op (the storage cleared) while ``frozen[0]``."""
    rows: list[tuple[bool, float | None, float]] = []
    update = runner.alg.update

    def wrapped() -> dict[str, float]:
        stats = runner.env.last_stats
        rows.append((frozen[0], stats.get("success"), stats.get("episodes", 0.0)))
        if frozen[0]:
            runner.alg.storage.clear()
            return {}
        return update()

    runner.alg.update = wrapped
    runner.logger.log = lambda **kw: None
    return rows


def live(run: str, n: int, f: int) -> None:
    cfg = dataclasses.replace(run_dir.read_config(run), resume=None, max_iterations=n)
    torch.manual_seed(cfg.seed)
    env = make(cfg.task, num_envs=cfg.num_envs, backend=cfg.backend, device=cfg.device, seed=cfg.seed, cfg=cfg.env)
    runner = make_runner(cfg, env)
    if cfg.init:
        init_actor(runner, cfg.init, cfg)
        freeze_normalizer(runner.alg.actor)
    frozen = [False]
    rows = record(runner, frozen)
    runner.learn(n, init_at_random_ep_len=True)
    frozen[0] = True
    runner.learn(f)
    for it, (is_frozen, success, episodes) in enumerate(rows):
        print(f"{it:4d} {'frozen ' if is_frozen else 'updated'} success {success} episodes {episodes:.0f}")


def frozen(run: str, checkpoint: str, f: int) -> None:
    env, runner = load_run(run, checkpoint=checkpoint, seed=0)
    rows = record(runner, [True])
    runner.learn(f, init_at_random_ep_len=True)
    n = sum(e for _, _, e in rows)
    s = sum((p or 0.0) * e for _, p, e in rows)
    print(f"{checkpoint}: success {s / max(n, 1):.4f} over {n:.0f} episodes in {f} iterations")
    env.close()


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "live":
        live(args[0], int(args[1]), int(args[2]))
    elif mode == "frozen":
        frozen(args[0], args[1], int(args[2]))
    else:
        raise SystemExit("usage: training_stats_vs_fixed_policy.py live RUN N F | frozen RUN CHECKPOINT F")
