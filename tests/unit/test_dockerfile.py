"""The Dockerfile installs the wheel and copies nothing more than building it needs.

No Docker engine runs here, so the file is read: the build stage copies exactly the wheel's
inputs (metadata, setup.py's build step and the package data it names, the code), the image
stage receives only the built wheel, and nothing is installed editable.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
STAGES = re.split(r"^FROM ", DOCKERFILE, flags=re.M)[1:]


def _setup_data() -> tuple[str, ...]:
    """setup.py's DATA, read without running setup()."""
    for node in ast.parse((REPO / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DATA" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no DATA")


def _copies(stage: str) -> list[list[str]]:
    return [line.split()[1:] for line in stage.splitlines() if line.startswith("COPY ")]


def test_build_stage_copies_the_wheel_inputs_only() -> None:
    sources = {src.rstrip("/") for args in _copies(STAGES[0]) for src in args[:-1]}
    assert sources == {"pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "streams", *_setup_data()}
    assert all((REPO / src).exists() for src in sources)
    assert "pip wheel --no-deps" in STAGES[0]


def test_image_stage_installs_the_wheel_not_the_tree() -> None:
    assert len(STAGES) == 2
    assert _copies(STAGES[1]) == [["--from=build", "/dist", "/tmp/dist"]]
    assert "pip install /tmp/dist/rapport-*.whl" in STAGES[1]
    assert not re.search(r"pip install[^\n]*(\s-e\s|--editable)", DOCKERFILE)
