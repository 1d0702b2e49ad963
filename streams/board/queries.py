"""The board's SQL: one query per panel, each reading the store.

The detection figures (conversations, returning people, inbound and answered, first
response, open and breached alerts) come from :func:`streams.report.collect`, so the board
and `rapport report` can never disagree; they are kept apart from ``totals``, whose keys
match the Grafana clients table (tests/integration/test_grafana_queries.py compares them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

SIGNALS = "('like', 'repost', 'follow')"

CLIENT_TOTALS_SQL = f"""
SELECT client_id,
       count() AS interactions,
       countIf(ingested_at >= now64(3) - INTERVAL 60 SECOND) AS last_minute,
       countIf(kind NOT IN {SIGNALS} AND author_id != account_id AND author_id != '') AS from_others,
       countIf(kind NOT IN {SIGNALS} AND author_id = account_id AND kind != 'post') AS brand_replies,
       countIf(kind = 'like') AS likes,
       countIf(kind = 'repost') AS reposts,
       countIf(kind = 'follow') AS follows,
       max(created_at) AS last_event
FROM interactions FINAL
GROUP BY client_id
ORDER BY client_id
"""

LAST_EVENTS_SQL = """
SELECT client_id, platform, kind, author_handle, author_id, substring(text, 1, 60) AS text, created_at
FROM interactions FINAL
ORDER BY ingested_at DESC, created_at DESC
LIMIT {limit:UInt32}
"""

PIPELINE_SQL = """
SELECT stage,
       sum(events_in) AS events_in,
       sum(dead_lettered) AS dead_lettered,
       sum(skipped) AS skipped,
       argMax(lag, written_at) AS lag
FROM pipeline_metrics
WHERE minute >= now() - INTERVAL 1 HOUR
GROUP BY stage
ORDER BY stage
"""

# Stages whose latest flush (per worker, last two minutes) says they are retrying a call.
STALLS_SQL = """
SELECT stage, worker, detail, seen_at
FROM (SELECT stage, worker, argMax(state, written_at) AS last_state, argMax(detail, written_at) AS detail,
             max(written_at) AS seen_at
      FROM pipeline_metrics
      WHERE written_at >= now64(3) - INTERVAL 2 MINUTE AND state != ''
      GROUP BY stage, worker)
WHERE last_state = 'retrying'
ORDER BY stage, worker
"""


# Inbound and answered in the last hour of event time, from the per-minute rollup.
RECENT_SQL = """
SELECT client_id, sum(inbound) AS inbound_hour, sum(answered) AS answered_hour, sum(breached) AS breached_hour
FROM activity_minutely FINAL
WHERE minute >= (SELECT max(minute) FROM activity_minutely) - INTERVAL 1 HOUR
GROUP BY client_id
ORDER BY client_id
"""


@dataclass(frozen=True, slots=True)
class BoardData:
    totals: list[dict[str, Any]]
    last_events: list[dict[str, Any]]
    pipeline: list[dict[str, Any]]
    detection: list[dict[str, Any]] = field(default_factory=list)
    """Per client, as `rapport report` gives them (:func:`streams.report.collect`)."""
    recent: list[dict[str, Any]] = field(default_factory=list)
    stalls: list[dict[str, Any]] = field(default_factory=list)
    """Stages retrying a call right now (worker, what and the error): a stall is never silent."""


def _rows(client: Client, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=parameters or {})
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def read_board(client: Client, last_events: int = 8) -> BoardData:
    from streams.report import collect

    return BoardData(
        totals=_rows(client, CLIENT_TOTALS_SQL),
        last_events=_rows(client, LAST_EVENTS_SQL, {"limit": last_events}),
        pipeline=_rows(client, PIPELINE_SQL),
        detection=collect(client),
        recent=_rows(client, RECENT_SQL),
        stalls=_rows(client, STALLS_SQL),
    )
