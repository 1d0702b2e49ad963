"""One way to mount commands: ``streams/cli.py`` mounts every command and group, each Typer
is made by ``streams.commands.command_group``, and every command answers ``--help``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from typer.main import get_command
from typer.testing import CliRunner

from streams.cli import app

PACKAGE = Path(__file__).resolve().parents[2] / "streams"


def sources_matching(pattern: str) -> set[str]:
    return {str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
            if re.search(pattern, p.read_text(encoding="utf-8"))}


def test_only_cli_mounts_and_only_command_group_makes_a_typer() -> None:
    assert sources_matching(r"\.add_typer\(|\.command\(\)\s*\n\s*def |@\w+\.command\(") <= {
        "streams/cli.py", "streams/grafana/cli.py", "streams/ingest/cli.py"}
    assert sources_matching(r"\.add_typer\(") == {"streams/cli.py"}
    assert sources_matching(r"typer\.Typer\(") == {"streams/commands.py"}


def command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    subs = getattr(command, "commands", None)
    if subs is None:
        return [prefix]
    return [prefix, *(p for name, sub in sorted(subs.items()) for p in command_paths(sub, (*prefix, name)))]


def test_every_command_answers_help() -> None:
    paths = command_paths(get_command(app))
    assert {("report",), ("ping",), ("grafana", "provision"), ("ingest", "webhooks")} <= set(paths)
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output, path
