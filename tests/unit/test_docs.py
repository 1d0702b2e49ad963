"""Docs stay true to the code: every setting is documented, the README's commands exist."""

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
