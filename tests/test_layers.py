"""Imports go one way (README, "Layout"): rewards, envs <- tasks <- data <- policies <- sim2real <- scripts.

The contract lives in pyproject.toml ([tool.importlinter]) and is checked by import-linter's
``lint-imports``; a second run on a copy of the package with one back-import added shows that the
contract really catches one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("importlinter")


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = None
    if pythonpath is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_layer_contract_is_kept():
    r = lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 kept, 0 broken" in r.stdout


def test_layer_contract_catches_a_back_import(tmp_path):
    """A copy of the package where the physics core imports a task: the contract must break."""
    pkg = tmp_path / "worldloop"
    shutil.copytree(
        ROOT, pkg, ignore=shutil.ignore_patterns(".git", "runs", "tests", "docs", "__pycache__", "*.egg-info")
    )
    loop = pkg / "envs" / "loop.py"
    loop.write_text(loop.read_text() + "\nfrom worldloop.tasks.registry import get_task  # noqa: E402, F401\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    r = lint_imports(tmp_path, pythonpath=tmp_path)
    assert r.returncode != 0, r.stdout
    assert "BROKEN" in r.stdout and "worldloop.envs.loop -> worldloop.tasks.registry" in r.stdout
