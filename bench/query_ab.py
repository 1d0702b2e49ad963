"""Before/after timings of board queries on one kept bench store, run interleaved.

Run: .venv/bin/python bench/query_ab.py DIR [RUNS] [ROUNDS]
DIR holds a store kept by ``rapport bench --scale --keep DIR`` (the store is started on its
own, migrated as every start does, no broker, no worker). Each pair below is a query as main
sent it before this branch ("before") and as it is sent now ("after"), expanded as Grafana
sends it (variables "All", macros for a 7- and a 90-day range ending now), sent as the
read-only user over HTTP in Native format, like ``rapport bench --scale``. On a shared machine
the load moves within a minute, so the two sides are measured in ``ROUNDS`` alternating rounds
of ``RUNS`` runs each (after one warm-up), and the figure is the median over all runs of a side.
Prints one JSON object per pair and range, with the rows and bytes each side read (the same
whatever the load); nothing asserts a time.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from streams import figures
from streams.embedded.supervisor import Stack
from streams.grafana import sql
from streams.grafana.macros import TimeContext, expand
from streams.resources import example_clients
from streams.settings import Settings
from streams.store.client import connect
from streams.text import PANEL_TEXT_CHARS, one_line_sql

RANGES = {"7d": timedelta(days=7), "90d": timedelta(days=90)}

# As main had them before the open-items table (streams/grafana/sql.py at 00c1a8d).
_KEY = "client_id, account_id, platform, event_id"
_FIRST = f"""SELECT {_KEY}, received_at, due_at, status
      FROM responses FINAL
      WHERE {sql.SCOPE} AND {figures.UNANSWERED}
      ORDER BY due_at, {_KEY}
      LIMIT {sql.QUEUE_ROWS}"""
BEFORE_QUEUE = f"""
SELECT r.platform AS platform, r.account_id AS account_id, i.author_handle AS who,
       {one_line_sql("i.text", PANEL_TEXT_CHARS)} AS what,
       r.received_at AS received_at, dateDiff('second', r.received_at, now()) AS age_s,
       dateDiff('second', now(), r.due_at) AS due_in_s, r.status AS status, i.url AS link
FROM ({_FIRST}) AS r
LEFT JOIN (SELECT {_KEY}, argMax(author_handle, version) AS author_handle,
                  argMax(text, version) AS text, argMax(url, version) AS url
           FROM interactions
           WHERE {sql.SCOPE} AND ({_KEY}) IN (SELECT {_KEY} FROM ({_FIRST}))
           GROUP BY {_KEY}) AS i
    ON i.client_id = r.client_id AND i.account_id = r.account_id AND i.platform = r.platform
   AND i.event_id = r.event_id
ORDER BY r.due_at, r.client_id, r.account_id, r.platform, r.event_id
LIMIT {sql.QUEUE_ROWS}
"""
BEFORE_ALERT = f"""
SELECT client_id, account_id, platform, event_id,
       {one_line_sql("text", PANEL_TEXT_CHARS)} AS message,
       dateDiff('second', due_at, now()) / 60 AS overdue_minutes
FROM alerts FINAL
WHERE {figures.ALERT_OPEN} AND $__timeFilter(opened_at)
ORDER BY client_id, due_at
"""
PAIRS: dict[str, tuple[str, str]] = {
    "panel:unanswered_queue": (BEFORE_QUEUE, sql.UNANSWERED_QUEUE.sql),
    "alert:alert_unanswered": (BEFORE_ALERT, sql.ALERT_UNANSWERED.sql),
}


def _ms(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def variables(reader: Client, ctx: TimeContext) -> dict[str, Any]:
    out: dict[str, Any] = {"client": [r[0] for r in reader.query(sql.VAR_CLIENT).result_rows]}
    for name in ("account", "platform"):
        out[name] = [r[0] for r in reader.query(expand(sql.VARIABLES[name], out, ctx)).result_rows]
    return out


def compare(before: Callable[[], Any], after: Callable[[], Any], runs: int, rounds: int) -> dict[str, float]:
    before(), after()  # warm: the first run of a statement parses it
    times: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(rounds):
        for side, call in (("before", before), ("after", after)):
            times[side] += [_ms(call) for _ in range(runs)]
    return {f"{side}_ms": round(statistics.median(ms), 1) for side, ms in times.items()}


def rows_and_reads(reader: Client, text: str) -> tuple[int, int, int]:
    """Rows answered, and rows and bytes the store read for them (``X-ClickHouse-Summary``):
    what a query costs whatever the machine's load."""
    result = reader.query(text)
    summary = result.summary or {}
    return len(result.result_rows), int(summary.get("read_rows", 0)), int(summary.get("read_bytes", 0))


def main(data_dir: Path, runs: int, rounds: int) -> None:
    settings = Settings(data_dir=data_dir, clients=example_clients(), broker_url=None, store_url=None)
    stack = Stack(settings, workers=0)
    stack._start_store()  # the store alone: nothing here needs the broker
    try:
        from streams.store.migrations import migrate

        migrate(stack.store_url, settings)
        reader = connect(stack.store_url, settings, role="reader")
        load = Path("/proc/loadavg").read_text().split()[:3]
        now = datetime.now(UTC)
        for rng, delta in RANGES.items():
            ctx = TimeContext(now - delta, now, max(1.0, delta.total_seconds() / 1000))
            values = variables(reader, ctx)
            for name, (old, new) in PAIRS.items():
                old_sql, new_sql = expand(old, values, ctx), expand(new, values, ctx)
                before, after = rows_and_reads(reader, old_sql), rows_and_reads(reader, new_sql)
                result: dict[str, Any] = {"query": name, "range": rng, "load": load,
                                          "rows": [before[0], after[0]], "read_rows": [before[1], after[1]],
                                          "read_mb": [round(before[2] / 1e6, 1), round(after[2] / 1e6, 1)]}
                result.update(compare(lambda t=old_sql: reader.raw_query(t, fmt="Native"),  # type: ignore[misc]
                                      lambda t=new_sql: reader.raw_query(t, fmt="Native"), runs, rounds))
                print(orjson.dumps(result).decode(), flush=True)
        reader.close()
    finally:
        stack.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 7, int(sys.argv[3]) if len(sys.argv) > 3 else 3)
