"""Test-process setup.

- Several test modules import mujoco before worldloop, so the headless OpenGL default that
  ``worldloop/__init__.py`` sets must be in place before any of them is collected.
- Under pytest-xdist (the README's ``-n 2``) each worker gets its share of the cores: torch's OpenMP
  threads and MuJoCo's physics threads of two workers on two cores would otherwise wait on each other
  (BENCHMARKS.md, "Sharing the cores": a 2-thread op beside a busy process ran 4-5x slower). Set here,
  before torch is imported, so subprocess CLIs inherit it too; a value set by the caller is kept.
- ``--dist loadfile`` hands the test files to the two workers one at a time, a worker taking the next
  when it is nearly done. pytest-xdist orders the files by their number of tests, not their duration,
  so files of a few long tests came last and one worker could end running one of them alone. Here the
  files go longest first (:data:`LONGEST_FIRST`, from ``pytest --durations=0``), xdist's reordering off,
  and the short files fill in behind: the longest-processing-time-first rule for two machines.
"""

import os
import sys

if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("MUJOCO_GL", "egl")

if os.environ.get("PYTEST_XDIST_WORKER"):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _threads = str(max(1, _cores // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    os.environ.setdefault("OMP_NUM_THREADS", _threads)
    os.environ.setdefault("WORLDLOOP_NUM_THREADS", _threads)


LONGEST_FIRST = (
    "test_tasks.py",  # ~30% of the suite: the newton expert episodes, 20-40 s each
    "test_training.py",  # the SIGKILL-and-resume runs
    "test_sim2real_report.py",  # system identification
    "test_cli.py",
    "test_data.py",
    "test_world_action.py",
    "test_physics.py",
    "test_new_task_docs.py",
    "test_sim2real_statics.py",
    "test_readme.py",
    "test_sim2real_eval.py",
)
"""Test files in decreasing order of their total duration (``pytest -n 2 --dist loadfile --durations=0``,
BENCHMARKS.md "Test suite"); the others, each under 20 s, follow in collection order."""


def pytest_configure(config) -> None:
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order set below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(session, config, items) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order stays
