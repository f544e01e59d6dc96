"""The wheel holds every subpackage and every asset (packages are discovered, not listed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"tests", "docs", "build", "runs", ".git"}


def test_wheel_holds_every_subpackage_and_asset(tmp_path):
    # Build from a clean copy: an in-tree build would leave build/ behind and reuse stale files.
    src = tmp_path / "src"
    shutil.copytree(
        ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv*", "runs", "build", "*.egg-info", "__pycache__")
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = tmp_path.glob("worldloop-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = [
        p.parent.relative_to(ROOT)
        for p in ROOT.rglob("__init__.py")
        # hidden folders (.venv, .venv-isaaclab: the README's environments) are not the package
        if not SKIP & set(p.relative_to(ROOT).parts)
        and not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
        and "egg-info" not in str(p)
    ]
    assert len(packages) >= 8
    for pkg in packages:
        init = "/".join(("worldloop", *pkg.parts, "__init__.py"))
        assert init in names, f"subpackage {pkg} is missing from the wheel"
        for module in (ROOT / pkg).glob("*.py"):
            if module.name == "setup.py" and pkg == Path("."):
                assert "worldloop/setup.py" not in names, "setup.py is not a module of the package"
                continue
            assert "/".join(("worldloop", *pkg.parts, module.name)) in names, f"{module} is missing from the wheel"
    assets = [p for p in (ROOT / "assets").rglob("*") if p.is_file() and p.suffix != ".pyc"]
    assert any(p.suffix == ".xml" for p in assets)
    for a in assets:
        assert "worldloop/" + a.relative_to(ROOT).as_posix() in names, f"asset {a.name} is missing from the wheel"
    assert not any(n.startswith(("worldloop/tests/", "tests/")) for n in names)
