"""The terminal board at 120 columns keeps time, platform, kind and author readable, and
library logs go to the log file while it runs, never over it."""

from __future__ import annotations

import io
import logging
from datetime import datetime
from pathlib import Path

from rich.console import Console

from streams.board.demo import logs_to_file
from streams.board.queries import BoardData
from streams.board.render import render
from streams.clients import parse_clients

CLIENTS = parse_clients("""
[[clients]]
id = "acme"
name = "Acme Coffee"
[[clients.accounts]]
platform = "instagram"
account_id = "178400000000001"
""")


def test_last_events_columns_stay_readable_at_120_columns() -> None:
    long = "Release notes: version 4.3 … 📴 " + "and a very long text that goes on " * 10
    events = [{"client_id": "acme", "platform": "instagram", "kind": "mention", "author_handle": "someone_long_name",
               "author_id": "1", "text": long[:60], "created_at": datetime(2026, 9, 15, 14, 0, 5)}] * 3
    data = BoardData(detection=[], last_events=events, pipeline=[])
    screen = Console(file=io.StringIO(), width=120, color_system=None)
    screen.print(render(data, CLIENTS, 1.0))
    lines = [line for line in screen.file.getvalue().splitlines() if "14:00:05" in line]  # type: ignore[attr-defined]
    assert len(lines) == 3
    for line in lines:
        assert max(len(line), 0) <= 120
        for cell in ("14:00:05", "acme", "instagram", "mention", "someone_long_name", "Release notes: version 4.3"):
            assert cell in line, line


def test_logs_go_to_the_file_while_the_board_runs(tmp_path: Path) -> None:
    root = logging.getLogger()
    terminal = io.StringIO()
    before = root.handlers[:]
    handler = logging.StreamHandler(terminal)
    root.handlers = [handler]
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        with logs_to_file(tmp_path / "logs" / "demo.log") as path:
            logging.getLogger("tests.board_render.library").info("connecting to 127.0.0.1:9092")
        logging.getLogger("tests.board_render.library").info("after the board")
        assert "connecting to 127.0.0.1:9092" in path.read_text()
        assert "connecting" not in terminal.getvalue()
        assert "after the board" in terminal.getvalue()  # the terminal handler is back
    finally:
        root.handlers = before
        root.setLevel(old_level)
