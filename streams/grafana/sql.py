"""Every SQL query Grafana runs on the store: panels, variables and alert rules.

Written for Grafana's ClickHouse datasource: dashboard variables are interpolated by Grafana
(``${client:singlequote}`` -> ``'acme','globex'``), then the datasource's own macros by the plugin
(``$__timeFilter(col)``, ``$__timeInterval(col)``, ``$__interval_s``; see :mod:`streams.grafana.macros`).

Rules every query here keeps (tests/grafana checks them by running each one on chDB):

* client-facing queries filter ``client_id IN (...)``, the first column of every detection sort
  key, and most also account and platform, the next two: the primary key prunes;
* time series filter on time with ``$__timeFilter`` and bucket with ``$__timeInterval`` or
  ``$__timeGroup``; all-time figures (returning people, the unanswered queue) read the compact
  state tables ``FINAL`` by their sort key;
* state tables are read ``FINAL`` (ReplacingMergeTree: latest version wins, deleted rows hidden);
* the pipeline board reads ``pipeline_metrics`` (``FINAL``) and ``dead_letters``, which have no client: they
  filter by time (and platform where the data has one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams import figures
from streams.board.queries import STALLS_SQL
from streams.text import PANEL_TEXT_CHARS, one_line_sql

CLIENT = "client_id IN (${client:singlequote})"
SCOPE = figures.GRAFANA_SCOPE.where
PLATFORM = "platform IN (${platform:singlequote})"


@dataclass(frozen=True, slots=True)
class Query:
    """One query: its SQL and what a test checks about it."""

    key: str
    sql: str
    columns: tuple[str, ...]  # the columns the panel reads, in order
    time_series: bool = False  # a time series panel: must filter by time
    client: bool = True  # must filter by client
    all_time: tuple[str, ...] = ()  # state tables read with no time bound: must prune by sort key
    tables: tuple[str, ...] = field(default=())  # tables read (for EXPLAIN checks)


def _q(key: str, sql: str, columns: tuple[str, ...], **kw: object) -> Query:
    return Query(key, sql.strip(), columns, **kw)  # type: ignore[arg-type]


# --- variables -------------------------------------------------------------------------------
VAR_CLIENT = "SELECT DISTINCT client_id FROM activity_minutely ORDER BY client_id"
VAR_ACCOUNT = f"SELECT DISTINCT account_id FROM activity_minutely WHERE {CLIENT} ORDER BY account_id"
VAR_PLATFORM = (f"SELECT DISTINCT platform FROM activity_minutely WHERE {CLIENT} "
                "AND account_id IN (${account:singlequote}) ORDER BY platform")
VARIABLES = {"client": VAR_CLIENT, "account": VAR_ACCOUNT, "platform": VAR_PLATFORM}

# --- agency overview: figures of the catalogue (streams/figures.py) -------------------------------
def _figures(key: str, names: tuple[str, ...], by: str | None = None, **kw: object) -> Query:
    """A panel of catalogue figures: the same SQL as the report's, in Grafana's scope."""
    columns = ((by,) if by else ()) + names
    all_time = tuple(t for t in figures.tables_of(names)
                     if any(figures.BY_NAME[n].time_column is None for n in names if figures.BY_NAME[n].table == t))
    return _q(key, figures.figures_sql(names, figures.GRAFANA_SCOPE, by), columns,
              all_time=all_time, tables=tuple(figures.tables_of(names)), **kw)


def _expr(name: str) -> str:
    """A catalogue figure's aggregate in Grafana's scope, for a panel that buckets it."""
    return figures.BY_NAME[name].expression(figures.GRAFANA_SCOPE)


CONVERSATIONS = _figures("conversations", ("conversations",))
RETURNING = _figures("returning_people", ("returning_people",))
RESPONSE_STATS = _figures("response_stats", ("reply_rate_in_sla", "first_response_business_median_s",
                                             "first_response_business_p90_s", "unanswered", "breached"))
CLIENT_FIGURES = ("conversations", "returning_people", "reply_rate_in_sla", "first_response_business_median_s",
                  "first_response_business_p90_s", "unanswered", "breached", "likes", "reposts", "follows")
CLIENTS_TABLE = _figures("clients_table", CLIENT_FIGURES, by="client_id")
CONNECTIONS_VS_VANITY = _figures("connections_vs_vanity", ("conversations", "likes", "reposts", "follows"),
                                 by="client_id")

INBOUND_SERIES = _q("inbound_series", f"""
SELECT time, sum(inbound) AS inbound, sum(due) AS due, sum(answered_in_sla) AS answered_in_sla
FROM (
    SELECT $__timeInterval(received_at) AS time, {_expr("inbound")} AS inbound, 0 AS due, 0 AS answered_in_sla
    FROM responses FINAL
    WHERE {SCOPE} AND $__timeFilter(received_at)
    GROUP BY time
    UNION ALL
    SELECT $__timeInterval(due_at) AS time, 0 AS inbound, {_expr("due")} AS due,
           {_expr("answered_in_sla")} AS answered_in_sla
    FROM responses FINAL
    WHERE {SCOPE} AND $__timeFilter(due_at)
    GROUP BY time
)
GROUP BY time
ORDER BY time
""", ("time", "inbound", "due", "answered_in_sla"), time_series=True, tables=("responses",))
"""The catalogue's ``inbound`` per interval of receipt, ``due`` and ``answered_in_sla`` per interval
of deadline: summed over the range, each equals the report's figure for that range."""

# --- client board -----------------------------------------------------------------------------
_KEY = "client_id, account_id, platform, event_id"
QUEUE_ROWS = 500
UNANSWERED_QUEUE = _q("unanswered_queue", f"""
SELECT platform, account_id, author_handle AS who, {one_line_sql("text", PANEL_TEXT_CHARS)} AS what,
       received_at, dateDiff('second', received_at, now()) AS age_s,
       dateDiff('second', now(), due_at) AS due_in_s, status, url AS link
FROM open_items FINAL
WHERE {SCOPE} AND {figures.UNANSWERED}
ORDER BY due_at, {_KEY}
LIMIT {QUEUE_ROWS}
""", ("platform", "account_id", "who", "what", "received_at", "age_s", "due_in_s", "status", "link"),
    all_time=("open_items",), tables=("open_items",))
"""The first unanswered responses by deadline (ties by the sort key), from ``open_items``, which
holds the unanswered responses with who wrote them, their text and link (migration 0012): the
rows of ``responses FINAL`` filtered and joined with their ``interactions``, without reading
every response ever received nor the interactions table."""

ACTIVE_THREADS = _q("active_threads", f"""
SELECT platform, account_id, root_id, posts, depth, participants, account_posts, first_at, last_at
FROM threads FINAL
WHERE {SCOPE} AND $__timeFilter(last_at)
ORDER BY last_at DESC
LIMIT 100
""", ("platform", "account_id", "root_id", "posts", "depth", "participants", "account_posts", "first_at",
      "last_at"), tables=("threads",))

RESPONSE_TIMES = _q("response_time_distribution", f"""
SELECT multiIf(s < 300, '< 5 min', s < 900, '5-15 min', s < 3600, '15-60 min', s < 14400, '1-4 h',
               s < 86400, '4-24 h', '> 1 day') AS first_response, count() AS messages
FROM (SELECT response_business_s AS s FROM responses FINAL
      WHERE {SCOPE} AND {figures.ANSWERED} AND $__timeFilter(received_at))
GROUP BY first_response
ORDER BY min(s)
""", ("first_response", "messages"), tables=("responses",))

TOP_RETURNING = _q("top_returning", f"""
SELECT person_handle AS person, platform, account_id, conversations, turns, last_at AS last_talked
FROM connections FINAL
WHERE {SCOPE} AND returning
ORDER BY conversations DESC, turns DESC, person
LIMIT 20
""", ("person", "platform", "account_id", "conversations", "turns", "last_talked"),
    all_time=("connections",), tables=("connections",))

CONVERSATIONS_PER_HOUR = _q("conversations_per_hour", f"""
SELECT $__timeGroup(started_at, '1h') AS time, platform, {_expr("conversations")} AS conversations
FROM conversations FINAL
WHERE {SCOPE} AND $__timeFilter(started_at)
GROUP BY time, platform
ORDER BY time, platform
""", ("time", "platform", "conversations"), time_series=True, tables=("conversations",))

# --- pipeline health --------------------------------------------------------------------------
# pipeline_metrics holds one row per worker flush (sum them), read FINAL so that an insert the
# worker retried counts once (migration 0009); minutes are whole, so a bucket is never shorter
# than a minute when rates are computed.
_BUCKET_S = "greatest($__interval_s, 60)"

EVENTS_PER_STAGE = _q("events_per_stage", f"""
SELECT $__timeInterval(minute) AS time, stage, sum(events_in) / {_BUCKET_S} AS events_per_s
FROM pipeline_metrics FINAL
WHERE $__timeFilter(minute)
GROUP BY time, stage
ORDER BY time, stage
""", ("time", "stage", "events_per_s"), time_series=True, client=False, tables=("pipeline_metrics",))

RECORDS_PER_TOPIC = _q("records_per_topic", f"""
SELECT $__timeInterval(minute) AS time, topic, sum(records_in) / {_BUCKET_S} AS records_per_s
FROM pipeline_metrics FINAL
WHERE $__timeFilter(minute) AND records_in > 0
GROUP BY time, topic
ORDER BY time, topic
""", ("time", "topic", "records_per_s"), time_series=True, client=False, tables=("pipeline_metrics",))

# Lag: each worker's latest report per minute, summed over workers and topics, max per bucket.
CONSUMER_LAG = _q("consumer_lag", """
SELECT time, stage, max(lag) AS lag
FROM (SELECT $__timeInterval(minute) AS time, minute, stage, sum(worker_lag) AS lag
      FROM (SELECT minute, stage, topic, worker, argMax(lag, written_at) AS worker_lag
            FROM pipeline_metrics FINAL
            WHERE $__timeFilter(minute)
            GROUP BY minute, stage, topic, worker)
      GROUP BY time, minute, stage)
GROUP BY time, stage
ORDER BY time, stage
""", ("time", "stage", "lag"), time_series=True, client=False, tables=("pipeline_metrics",))

# Dead letters are counted in the archive, one per payload at its first arrival (the view reads
# raw_events FINAL): a redelivered batch does not count its dead letters twice, as its counters
# in pipeline_metrics would (they count work done). Normalizer dead letters, as before. FINAL
# over the whole archive costs ~1 s per million payloads (bench/archive_dedup_cost.py), so the
# keys with a dead row in the window are picked first: FINAL then merges only their granules.


def _dead_in_window(column: str) -> str:
    return (f"(platform, raw_key) IN (SELECT platform, raw_key FROM raw_events "
            f"WHERE outcome = 'dead' AND $__timeFilter({column}))")


DLQ_RATE = _q("dlq_rate", f"""
SELECT $__timeInterval(archived_at) AS time, count() * 60 / {_BUCKET_S} AS dead_letters_per_min
FROM dead_letters
WHERE $__timeFilter(archived_at) AND platform != '' AND {_dead_in_window("archived_at")}
GROUP BY time
ORDER BY time
""", ("time", "dead_letters_per_min"), time_series=True, client=False, tables=("raw_events",))

LATEST_DEAD_LETTERS = _q("latest_dead_letters", f"""
SELECT archived_at, platform, reason, topic, partition, offset
FROM dead_letters
WHERE {PLATFORM} AND $__timeFilter(received_at) AND {_dead_in_window("received_at")}
ORDER BY archived_at DESC
LIMIT 50
""", ("archived_at", "platform", "reason", "topic", "partition", "offset"), client=False,
    tables=("raw_events",))

INGEST_LATENCY = _q("ingest_latency", f"""
SELECT $__timeInterval(received_at) AS time,
       quantile(0.5)(dateDiff('millisecond', received_at, archived_at)) / 1000 AS p50_s,
       quantile(0.99)(dateDiff('millisecond', received_at, archived_at)) / 1000 AS p99_s
FROM raw_events
WHERE {PLATFORM} AND $__timeFilter(received_at)
GROUP BY time
ORDER BY time
""", ("time", "p50_s", "p99_s"), time_series=True, client=False, tables=("raw_events",))

# The sweep writes a breach with its processing time as version; for alerts still open that is
# when the alert reached the store, so version - deadline is how late the sweep was.
SWEEP_LAG = _q("sweep_lag", f"""
SELECT $__timeInterval(opened_at) AS time, quantile(0.5)(lag_s) AS p50_s, max(lag_s) AS max_s
FROM (SELECT opened_at, (toInt64(version) - toUnixTimestamp64Milli(opened_at)) / 1000 AS lag_s
      FROM alerts FINAL
      WHERE {CLIENT} AND {figures.ALERT_OPEN} AND $__timeFilter(opened_at))
GROUP BY time
ORDER BY time
""", ("time", "p50_s", "max_s"), time_series=True, tables=("alerts",))

# A stage retrying a call right now, with the store's error code: a stall is never silent. The
# terminal board's own query (streams/board/queries.py), so both show the same stalls.
STALLED_STAGES = _q("stalled_stages", STALLS_SQL, ("stage", "worker", "error_code", "detail", "seen_at"),
                    client=False, tables=("pipeline_metrics",))

# --- alert rules (no dashboard variables: one series per row, strings become labels) ----------
# ``open_items`` holds every open alert (status breached) as ``alerts FINAL`` has it, status, time
# and text (migration 0012): the rule reads the open set instead of every alert ever opened.
ALERT_UNANSWERED = _q("alert_unanswered", f"""
SELECT client_id, account_id, platform, event_id,
       {one_line_sql("alert_text", PANEL_TEXT_CHARS)} AS message,
       dateDiff('second', due_at, now()) / 60 AS overdue_minutes
FROM open_items FINAL
WHERE {figures.OPEN_ITEM_ALERT_OPEN} AND $__timeFilter(opened_at)
ORDER BY client_id, due_at
""", ("client_id", "account_id", "platform", "event_id", "message", "overdue_minutes"), client=False,
    tables=("open_items",))

ALERT_STALLED = _q("alert_stalled", """
SELECT if(reports = 0, 0, dateDiff('second', last_ingested, now()) / 60) AS silent_minutes
FROM (SELECT (SELECT count() FROM pipeline_metrics FINAL WHERE $__timeFilter(minute)) AS reports,
             (SELECT max(ingested_at) FROM interactions WHERE $__timeFilter(created_at)) AS last_ingested)
""", ("silent_minutes",), client=False, tables=("pipeline_metrics", "interactions"))

ALERT_DLQ = _q("alert_dlq", f"""
SELECT count() AS dead_letters
FROM dead_letters
WHERE platform != '' AND $__timeFilter(archived_at) AND {_dead_in_window("archived_at")}
""", ("dead_letters",), client=False, tables=("raw_events",))

PANEL_QUERIES: tuple[Query, ...] = (
    CONVERSATIONS, RETURNING, RESPONSE_STATS, CLIENTS_TABLE, CONNECTIONS_VS_VANITY, INBOUND_SERIES,
    UNANSWERED_QUEUE, ACTIVE_THREADS, RESPONSE_TIMES, TOP_RETURNING, CONVERSATIONS_PER_HOUR,
    EVENTS_PER_STAGE, RECORDS_PER_TOPIC, CONSUMER_LAG, DLQ_RATE, LATEST_DEAD_LETTERS, INGEST_LATENCY, SWEEP_LAG,
    STALLED_STAGES,
)
ALERT_QUERIES: tuple[Query, ...] = (ALERT_UNANSWERED, ALERT_STALLED, ALERT_DLQ)
