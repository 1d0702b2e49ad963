"""Docs stay true to the code: every setting is documented, the README's commands exist."""

import re
from pathlib import Path

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [f"RAPPORT_{name.upper()}" for name in Settings.model_fields if f"RAPPORT_{name.upper()}" not in text]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_readme_commands_are_make_targets() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in readme
        assert f"\n{target}:" in makefile


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _layout_items(prefix: str) -> str:
    """The README Layout bullet that starts with ``prefix``, its sub-bullets included."""
    section = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    bullets = re.split(r"\n(?=- )", section.strip())
    return next(b for b in bullets if b.startswith(f"- `{prefix}`"))


def test_readme_layout_names_every_subpackage_and_module_that_exists() -> None:
    text = _layout_items("streams/")
    subpackages = {p.parent.name for p in (ROOT / "streams").glob("*/__init__.py")}
    named = set(re.findall(r"`(\w+)/`", text)) - {"streams"}
    assert named == subpackages, f"README Layout names {sorted(named)}, streams/ holds {sorted(subpackages)}"
    modules = {p.name for p in (ROOT / "streams").rglob("*.py")}
    missing = sorted(m for m in re.findall(r"`(\w+\.py)`", text) if m not in modules)
    assert not missing, f"README Layout names modules that do not exist: {missing}"


def test_readme_layout_names_the_test_suites_and_unit_mirrors_the_package() -> None:
    text = _layout_items("tests/")
    suites = {p.name for p in (ROOT / "tests").iterdir() if (p / "__init__.py").is_file()}
    assert set(re.findall(r"`(\w+)/`", text)) - {"tests", "streams"} == suites
    subpackages = {p.parent.name for p in (ROOT / "streams").glob("*/__init__.py")}
    unit_dirs = {p.name for p in (ROOT / "tests" / "unit").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert unit_dirs <= subpackages, f"tests/unit/{sorted(unit_dirs - subpackages)} mirror no streams/ subpackage"
