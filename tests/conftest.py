"""Test-process setup: several test modules import mujoco before worldloop, so the headless OpenGL
default that ``worldloop/__init__.py`` sets must be in place before any of them is collected."""

import os
import sys

if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("MUJOCO_GL", "egl")
