"""Package discovery for the repository-as-package layout (metadata lives in pyproject.toml).

The repository's top level is the ``worldloop`` package: ``envs/`` installs as ``worldloop.envs``,
``tasks/robots/`` as ``worldloop.tasks.robots``, and so on. setuptools' ``find`` cannot prefix the
names it finds, so every folder holding an ``__init__.py`` is found here and mapped under
``worldloop``: a new subpackage is in the wheel without editing a list.
"""

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    """This file sits in the package's folder; it is not a module of the package."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "worldloop" and m[1] == "setup")]


setup(
    package_dir={"worldloop": "."},
    packages=["worldloop", *(f"worldloop.{p}" for p in find_packages(exclude=["tests*", "docs*", "build*", "runs*"]))],
    cmdclass={"build_py": BuildPy},
)
