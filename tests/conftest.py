"""Test-process setup.

- Several test modules import mujoco before worldloop, so the headless OpenGL default that
  ``worldloop/__init__.py`` sets must be in place before any of them is collected.
- Under pytest-xdist (the README's ``-n 2``) each worker gets its share of the cores: torch's OpenMP
  threads and MuJoCo's physics threads of two workers on two cores would otherwise wait on each other
  (BENCHMARKS.md, "Sharing the cores": a 2-thread op beside a busy process ran 4-5x slower). Set here,
  before torch is imported, so subprocess CLIs inherit it too; a value set by the caller is kept.
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
