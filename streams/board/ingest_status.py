"""Ingest agents' state on the board, read from their status files.

Each agent rewrites ``<data dir>/agents/<name>.json`` every few seconds (streams/ingest/
agent.py); the board reads those files rather than asking the agents, so a stuck agent
shows as stale instead of hanging the board.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from rich.table import Table

STALE_AFTER_S = 30.0


def read_ingest_status(data_dir: Path) -> list[dict[str, Any]]:
    """Every ingest agent's last status, oldest-name first; unreadable files are skipped."""
    out: list[dict[str, Any]] = []
    for path in sorted((Path(data_dir) / "agents").glob("*.json")):
        try:
            status = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if isinstance(status, dict):
            updated = status.get("updated_at") or 0
            if status.get("state") != "stopped" and time.time() - float(updated) > STALE_AFTER_S:
                status = {**status, "state": "stale"}
            out.append(status)
    return out


def _lag(status: dict[str, Any]) -> str:
    lag = status.get("lag_s")
    return "-" if lag is None else f"{float(lag):.1f}s"


def ingest_status_table(agents: list[dict[str, Any]]) -> Table:
    table = Table(title="ingest agents", expand=True)
    for col in ("agent", "state", "lag", "events/s", "published", "last error"):
        table.add_column(col, overflow="ellipsis", no_wrap=True)
    for a in agents:
        table.add_row(str(a.get("name", "?")), str(a.get("state", "?")), _lag(a),
                      f"{float(a.get('events_per_s') or 0):.1f}", f"{int(a.get('published') or 0):,}",
                      str(a.get("last_error") or "-"))
    return table


def ingest_status_lines(agents: list[dict[str, Any]]) -> list[str]:
    return [f"agent={a.get('name')} state={a.get('state')} lag={_lag(a)} "
            f"events_per_s={float(a.get('events_per_s') or 0):.1f} published={int(a.get('published') or 0)} "
            f"last_error={a.get('last_error') or '-'}" for a in agents]
