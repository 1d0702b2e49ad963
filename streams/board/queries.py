"""The board's SQL: every figure from the catalogue (streams/figures.py), plus its lists.

The figures are those of `rapport report` (:func:`streams.report.collect`, the same
catalogue Grafana's panels are built from), so the board, the report and Grafana can not
disagree; "last hour" is the same figures over the hour of event time before the latest
stored event (the demo runs on simulated history, so the wall clock would show nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from streams import figures
from streams.text import BOARD_TEXT_CHARS, one_line_sql

BOARD_FIGURES = (*figures.REPORT, *figures.TOTALS)
RECENT_FIGURES = ("inbound", "answered", "alerts_breached")

LAST_EVENTS_SQL = f"""
SELECT client_id, platform, kind, author_handle, author_id, {one_line_sql("text", BOARD_TEXT_CHARS)} AS text,
       created_at
FROM interactions FINAL
ORDER BY ingested_at DESC, created_at DESC
LIMIT {{limit:UInt32}}
"""

PIPELINE_SQL = """
SELECT stage,
       sum(events_in) AS events_in,
       sum(dead_lettered) AS dead_lettered,
       sum(skipped) AS skipped,
       argMax(lag, written_at) AS lag
FROM pipeline_metrics FINAL
WHERE minute >= now() - INTERVAL 1 HOUR
GROUP BY stage
ORDER BY stage
"""

# Stages whose latest flush (per worker, last two minutes) says they are retrying a call, with
# the ClickHouse error code of the last failure (0 when the error had none: connection refused).
# The pipeline Grafana board's "Stalled stages" panel runs this very text (streams/grafana/sql.py).
STALLS_SQL = """
SELECT stage, worker, toUInt32OrZero(extract(detail, 'code ([0-9]+)')) AS error_code, detail, seen_at
FROM (SELECT stage, worker, argMax(state, written_at) AS last_state, argMax(detail, written_at) AS detail,
             max(written_at) AS seen_at
      FROM pipeline_metrics FINAL
      WHERE written_at >= now64(3) - INTERVAL 2 MINUTE AND state != ''
      GROUP BY stage, worker)
WHERE last_state = 'retrying'
ORDER BY stage, worker
"""


@dataclass(frozen=True, slots=True)
class BoardData:
    detection: list[dict[str, Any]]
    """Per client (accounts under ``accounts``), every figure of :data:`BOARD_FIGURES`."""
    last_events: list[dict[str, Any]]
    pipeline: list[dict[str, Any]]
    recent: list[dict[str, Any]] = field(default_factory=list)
    """Per client, :data:`RECENT_FIGURES` over the last hour of event time."""
    stalls: list[dict[str, Any]] = field(default_factory=list)
    """Stages retrying a call right now (worker, what and the error): a stall is never silent."""
    unreadable: str = ""
    """Why the figures could not be read (empty when they were)."""


def _rows(client: Client, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=parameters or {})
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def latest_event(client: Client) -> datetime | None:
    """The latest stored event time (``None`` on an empty store)."""
    value = client.query("SELECT max(created_at), count() FROM interactions").result_rows[0]
    return value[0].replace(tzinfo=UTC) if value[1] else None


def read_board(client: Client, last_events: int = 8) -> BoardData:
    """Everything the board shows. The stalls are read first and on their own: a store that
    cannot answer the figures (a table missing, the very stall on show) still shows why."""
    from streams.report import collect

    stalls = _rows(client, STALLS_SQL)
    try:
        latest = latest_event(client)
        recent = [] if latest is None else collect(client, since=latest - timedelta(hours=1), until=latest,
                                                   names=RECENT_FIGURES)
        return BoardData(
            detection=collect(client, names=BOARD_FIGURES),
            last_events=_rows(client, LAST_EVENTS_SQL, {"limit": last_events}),
            pipeline=_rows(client, PIPELINE_SQL),
            recent=recent,
            stalls=stalls,
        )
    except DatabaseError as exc:
        if not stalls:
            raise
        return BoardData(detection=[], last_events=[], pipeline=[], stalls=stalls,
                         unreadable=str(exc).strip().splitlines()[0][:200])
