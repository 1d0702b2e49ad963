"""Every panel, variable and alert query, expanded as Grafana and its datasource expand them,
runs on chDB: on an empty store, and on simulated traffic through the real pipeline.

Queries go over the wire exactly as Grafana's datasource sends them (tests/support/
grafana_client.py) and, for column names of empty answers, through clickhouse-connect.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from streams import figures
from streams.clients import PLATFORMS, load_clients
from streams.grafana import sql
from streams.grafana.macros import TimeContext, expand
from streams.ingest.publisher import Publisher
from streams.simulator.traffic import Simulator
from streams.store.client import connect
from streams.text import PANEL_TEXT_CHARS, one_line_sql
from tests.support.grafana_client import GrafanaClickHouse
from tests.support.stack import Namespace, wait_until

pytestmark = pytest.mark.integration
START_MS = 1_790_000_000_000  # September 2026: history, so deadlines follow event time
EVENTS = 3000
_READ = re.compile(r"ReadFromMergeTree \((\w+)\.(\w+)\)")
_TREE = re.compile(r"^[\s│├└─]+")


def _columns(client: Client, sql_text: str) -> list[str]:
    """The result's column names, also when it has no rows (an empty Native answer has none)."""
    return [row[0] for row in client.query(f"DESCRIBE ({sql_text})").result_rows]


def _explain_sections(client: Client, sql_text: str) -> dict[str, list[str]]:
    """EXPLAIN indexes = 1, cut into one section per ReadFromMergeTree (by table)."""
    lines = [row[0] for row in client.query("EXPLAIN indexes = 1 " + sql_text).result_rows]
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        match = _READ.search(line)
        if match:
            current = sections.setdefault(match.group(2), [])
        elif current is not None:
            current.append(_TREE.sub("", line).strip())
    return sections


def _uses_primary_key(section: list[str]) -> bool:
    """PrimaryKey with client_id among its keys and a condition that prunes (not ``true``)."""
    if "PrimaryKey" not in section:
        return False
    start = section.index("PrimaryKey")
    block = section[start:start + 12]
    condition = next((line for line in block if line.startswith("Condition:")), "Condition: true")
    return "client_id" in block and condition != "Condition: true" and "client_id" in condition


def test_every_query_runs_on_an_empty_store(namespace: Namespace) -> None:
    ns = namespace
    grafana = GrafanaClickHouse(ns.store_url, ns.settings.store_database)
    grafana.connect()
    client = connect(ns.store_url, ns.settings)
    now = datetime.now(UTC)
    ctx = TimeContext(now - timedelta(hours=6), now, 30)
    try:
        for variables in ({"client": [], "account": [], "platform": []},  # variables found no values
                          {"client": "", "account": "", "platform": ""},  # Grafana's "None" option
                          {"client": ["acme"], "account": ["acme_official"], "platform": list(PLATFORMS)}):
            for name, text in sql.VARIABLES.items():
                assert grafana.query(expand(text, variables, ctx)).rows == [], name
            for query in (*sql.PANEL_QUERIES, *sql.ALERT_QUERIES):
                expanded = expand(query.sql, variables, ctx)
                result = grafana.query(expanded)  # no error: the panel shows "no data"
                assert result.columns in ([], list(query.columns)), query.key
                assert _columns(client, expanded) == list(query.columns), query.key
    finally:
        client.close()


def _publish(ns: Namespace) -> None:
    clients = load_clients(ns.settings.clients)
    pub = Publisher(ns.settings.model_copy(update={"publish_batch": 50}), ns.broker_url)
    for ev in Simulator(clients, seed=11, start_ms=START_MS).events(EVENTS):
        pub.add(ev.platform, orjson.dumps(ev.payload), ev.source, via_account=ev.via_account or "")
    pub.add("bluesky", b'{"kind": "commit", "commit": 42', "replay")  # not JSON: a dead letter
    pub.add("reddit", b'{"kind": "t1", "data": {"name": 7}}', "replay")  # JSON, malformed
    pub.close()


_QUEUE_SHOWN = ("platform", "account_id", "who", "what", "received_at", "status", "link")
_QUEUE_REFERENCE = f"""
SELECT r.platform AS platform, r.account_id AS account_id, i.author_handle AS who,
       {one_line_sql("i.text", PANEL_TEXT_CHARS)} AS what, r.received_at AS received_at, r.status AS status,
       i.url AS link
FROM (SELECT * FROM responses FINAL WHERE {sql.SCOPE} AND {figures.UNANSWERED}) AS r
LEFT JOIN (SELECT * FROM interactions FINAL) AS i
    ON i.client_id = r.client_id AND i.account_id = r.account_id AND i.platform = r.platform
   AND i.event_id = r.event_id
ORDER BY r.due_at, r.client_id, r.account_id, r.platform, r.event_id
LIMIT {{rows}}
"""


def _queue_matches_reference(client: Client, variables: dict[str, Any], ctx: TimeContext) -> None:
    """The queue (first rows by deadline, their interactions looked up by key) shows the rows of
    the plain definition: every unanswered response joined with ``interactions FINAL``; also
    when the cut falls inside the unanswered set (a limit of 3)."""
    unanswered = client.command(f"SELECT count() FROM responses FINAL WHERE {figures.UNANSWERED}")
    assert int(unanswered) > 3  # type: ignore[arg-type]
    shown = ", ".join(_QUEUE_SHOWN)
    for rows in (sql.QUEUE_ROWS, 3):
        panel = sql.UNANSWERED_QUEUE.sql.replace(f"LIMIT {sql.QUEUE_ROWS}", f"LIMIT {rows}")
        got = client.query(f"SELECT {shown} FROM ({expand(panel, variables, ctx)})").result_rows
        want = client.query(expand(_QUEUE_REFERENCE.replace("{rows}", str(rows)), variables, ctx)).result_rows
        assert got == want, rows
        assert len(got) == min(rows, int(unanswered))  # type: ignore[arg-type]


_ALERT_REFERENCE = f"""
SELECT client_id, account_id, platform, event_id, {one_line_sql("text", PANEL_TEXT_CHARS)} AS message
FROM alerts FINAL
WHERE {figures.ALERT_OPEN} AND $__timeFilter(opened_at)
ORDER BY ALL
"""


def _alert_rule_matches_reference(client: Client, ctx: TimeContext) -> None:
    """The unanswered-mention rule (read from ``open_items``) fires for exactly the open alerts
    of ``alerts FINAL`` in its window, with their text."""
    rule = expand(sql.ALERT_UNANSWERED.sql, {}, ctx)
    got = client.query(f"SELECT client_id, account_id, platform, event_id, message FROM ({rule}) ORDER BY ALL")
    want = client.query(expand(_ALERT_REFERENCE, {}, ctx)).result_rows
    assert got.result_rows == want and want


def test_queries_on_simulated_traffic(namespace: Namespace) -> None:
    ns = namespace
    _publish(ns)
    with ns.worker():
        ns.drain()
        probe = connect(ns.store_url, ns.settings)
        try:  # the workers flush pipeline_metrics every 5 s
            wait_until(lambda: probe.query("SELECT count() FROM pipeline_metrics WHERE events_in > 0")
                       .result_rows[0][0] > 0, timeout_s=30)
        finally:
            probe.close()
    clients = [c.id for c in load_clients(ns.settings.clients).clients]
    client = connect(ns.store_url, ns.settings)
    grafana = GrafanaClickHouse(ns.store_url, ns.settings.store_database)
    grafana.connect()
    try:
        first, last = client.query("SELECT min(created_at), max(created_at) FROM interactions").result_rows[0]
        now = datetime.now(UTC)
        ctx = TimeContext(first.replace(tzinfo=UTC) - timedelta(days=1), max(last.replace(tzinfo=UTC), now)
                          + timedelta(days=1), 3600)
        # the variables as Grafana resolves them with "All" selected, each from its own query
        variables: dict[str, Any] = {"client": clients}
        for name in ("account", "platform"):
            variables[name] = [r[0] for r in grafana.query(expand(sql.VARIABLES[name], variables, ctx)).rows]
        assert sorted(r[0] for r in grafana.query(sql.VARIABLES["client"]).rows) == sorted(clients)
        assert variables["account"] and variables["platform"]

        results: dict[str, list[dict[str, Any]]] = {}
        for query in (*sql.PANEL_QUERIES, *sql.ALERT_QUERIES):
            expanded = expand(query.sql, variables, ctx)
            result = grafana.query(expanded)
            assert result.columns in ([], list(query.columns)), (query.key, result.columns)
            assert _columns(client, expanded) == list(query.columns), query.key
            results[query.key] = result.dicts()
        for key in ("conversations", "clients_table", "connections_vs_vanity", "inbound_series",
                    "unanswered_queue", "active_threads", "response_time_distribution", "conversations_per_hour",
                    "events_per_stage", "records_per_topic", "consumer_lag", "ingest_latency", "alert_unanswered",
                    "latest_dead_letters", "dlq_rate", "sweep_lag", "returning_people", "response_stats",
                    "alert_stalled", "alert_dlq"):
            assert results[key], f"{key}: no rows on simulated traffic\n{ns.log_tail()}"
        assert results["conversations"][0]["conversations"] > 0
        assert {r["client_id"] for r in results["clients_table"]} <= set(clients)
        assert {r["status"] for r in results["unanswered_queue"]} <= {"open", "breached"}
        assert all(r["who"] or r["what"] for r in results["unanswered_queue"]), "queue rows found no message"
        _queue_matches_reference(client, variables, ctx)
        _alert_rule_matches_reference(client, ctx)

        # the client filter filters: one client's table has that client alone
        one = expand(sql.CLIENTS_TABLE.sql, {**variables, "client": [clients[0]]}, ctx)
        assert {r[0] for r in grafana.query(one).rows} <= {clients[0]}

        # all-time figures read the state tables by their sort key
        for query in sql.PANEL_QUERIES:
            if not query.all_time:
                continue
            sections = _explain_sections(client, expand(query.sql, variables, ctx))
            for table in query.all_time:
                assert table in sections, (query.key, table, sorted(sections))
                assert _uses_primary_key(sections[table]), (query.key, table, sections[table])

        # figure by figure equality with the report and the board: tests/integration/test_figures_equal.py
    finally:
        client.close()
