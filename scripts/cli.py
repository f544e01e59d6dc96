"""``worldloop <command>``: train, bench, list."""

from __future__ import annotations

import sys

USAGE = """usage: worldloop <command> [options]

commands:
  train   train a PPO policy on a task         (worldloop train --task Franka-Reach-v0)
  bench   measure env-steps/s of a task        (worldloop bench --task Franka-Reach-v0 --num-envs 1024)
  list    print the registered tasks

`worldloop <command> --help` documents every option of a command.
"""


def cmd_list(argv: list[str]) -> None:
    import worldloop

    specs = worldloop.list_tasks()
    width = max(len(s.id) for s in specs)
    for s in specs:
        print(f"{s.id:<{width}}  {s.summary}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    cmd, rest = argv[0], argv[1:]
    if cmd == "train":
        from worldloop.scripts.train import main as run
    elif cmd == "bench":
        from worldloop.scripts.bench import main as run
    elif cmd == "list":
        run = cmd_list
    else:
        sys.exit(f"worldloop: unknown command {cmd!r}; allowed: train, bench, list\n\n{USAGE}")
    run(rest)


if __name__ == "__main__":
    main()
