"""``worldloop <command>``: the command line; each command lives in ``scripts/<command>.py``."""

from __future__ import annotations

import importlib
import os
import sys

USAGE = """usage: worldloop <command> [options]

commands:
  train            train a PPO policy on a task               worldloop train --task Franka-Reach-v0
  play             evaluate a run, optionally record video    worldloop play --run RUN --video
  export           write a run's actor to ONNX/TorchScript    worldloop export --run RUN
  bench            measure env-steps/s of a task              worldloop bench --task Franka-Reach-v0 --num-envs 1024
  expert           success of the scripted experts            worldloop expert --tasks Franka-Lift-v0 --episodes 1000
  curve            a run's learning curve as a table          worldloop curve --run RUN
  collect          episodes of a policy as a LeRobot dataset  worldloop collect --task Franka-Lift-v0 --out DIR
  pretrain         fit a world-action model's world model     worldloop pretrain --data datasets/lift_random
  finetune         behaviour-clone demonstrations into it     worldloop finetune --data DEMOS --init RUN
  model-eval       K-step prediction error per obs block      worldloop model-eval --run RUN --data DIR
  sim2real         sim-to-real report of a run                worldloop sim2real --run RUN
  isaaclab-assets  stand-in USD assets for Isaac Lab          worldloop isaaclab-assets --out DIR
  list             print the registered tasks                 worldloop list

`worldloop <command> --help` documents every option of a command; WORLDLOOP_DEBUG=1 shows the
traceback of an input error.
"""
COMMANDS = (
    "train", "play", "export", "bench", "expert", "curve", "collect", "list", "pretrain", "finetune", "model-eval",
    "sim2real", "isaaclab-assets",
)  # fmt: skip


def cmd_list(argv: list[str]) -> None:
    import worldloop

    if argv:
        if argv[0] in ("-h", "--help"):
            print("usage: worldloop list\n\nPrint the registered task ids and what each task is.")
            return
        sys.exit(f"worldloop list: takes no options, got {' '.join(argv)}")

    specs = worldloop.list_tasks()
    width = max(len(s.id) for s in specs)
    for s in specs:
        print(f"{s.id:<{width}}  {s.summary}")
    example = "any Isaac Lab 3.0 task, e.g. isaaclab:Isaac-Cartpole-v0 (README, 'Isaac Lab backend')"
    print(f"{'isaaclab:<id>':<{width}}  {example}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        sys.exit(f"worldloop: unknown command {cmd!r}; allowed: {', '.join(COMMANDS)}\n\n{USAGE}")
    if cmd == "list":
        run = cmd_list
    else:
        run = importlib.import_module(f"worldloop.scripts.{cmd.replace('-', '_')}").main
    try:
        run(rest)
    except (KeyError, ValueError, FileNotFoundError, ImportError) as e:  # CheckpointError, ConfigError, ... too
        # Input errors: say what was wrong, without a traceback (WORLDLOOP_DEBUG=1 shows it).
        if os.environ.get("WORLDLOOP_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        sys.exit(f"worldloop {cmd}: error: {msg}")


if __name__ == "__main__":
    main()
