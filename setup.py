"""Build step: the wheel carries the repository's top-level data files as package data.

``schemas/``, ``clients.example.toml`` and the generated ``deploy/grafana`` files stay where they
are in the repository, the one source. ``build_py`` copies them into ``streams/_data/`` of the
build directory (same relative paths; never into the source tree, so a checkout cannot hold a
stale copy), and the wheel ships them; ``streams/resources.py`` reads them from either place.
Metadata lives in pyproject.toml; MANIFEST.in puts the same files into an sdist.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PACKAGED = Path("streams") / "_data"  # streams/resources.py PACKAGED
DATA = ("schemas", "clients.example.toml", "deploy/grafana/dashboards", "deploy/grafana/provisioning")


class BuildPyWithData(build_py):
    """``build_py`` plus the copy of :data:`DATA` (skipped for an editable install: it reads the checkout)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for rel in DATA:
            source, target = ROOT / rel, Path(self.build_lib) / PACKAGED / rel
            if not source.exists():
                raise FileNotFoundError(f"{source}: part of the wheel's package data, missing from the tree")
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".*"))
            else:
                shutil.copy2(source, target)


setup(cmdclass={"build_py": BuildPyWithData})
