"""Every table duplicate-free under redelivery and re-fetch, read the way users read it.

The same input (every platform's fixture, a payload the normalizer refuses, envelopes the sink
refuses) is delivered twice through the real pipeline (Tansu + chDB, a worker process each
time), the second time a month later in arrival time, as a re-fetch a month on would. The
tables' user-facing reads must give identical results after the second delivery. The same
two deliveries into a store built by migrations 0001-0008 show the holes the old schema had,
and migrating that store to the head gives the head's results (tests/integration, issue 9).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.agents.metrics import COLUMNS as METRIC_COLUMNS
from streams.agents.metrics import MetricsBuffer
from streams.board.queries import PIPELINE_SQL
from streams.contracts.topics import INTERACTIONS, full_names
from streams.grafana import sql as grafana_sql
from streams.grafana.macros import TimeContext, expand
from streams.ingest.publisher import Publisher
from streams.interaction import CHANGE_COLUMNS, INTERACTION_COLUMNS
from streams.kafka_admin import ensure_topics
from streams.settings import Settings
from streams.store.client import connect
from streams.store.migrations import MIGRATIONS_DIR, load_migrations, migrate
from streams.store.writer import TableWriter
from tests.integration.test_detect_pipeline import x_post
from tests.support.stack import REPO, Namespace, unique_name

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
FILES = {"bluesky": "bluesky_jetstream", "mastodon": "mastodon_streaming", "x": "x_api_v2",
         "facebook": "facebook_webhooks", "instagram": "instagram_webhooks", "reddit": "reddit"}
FIRST_ARRIVAL_MS = 1_795_700_000_000  # 2026-11-26: the first delivery's received_at
MONTH_MS = 31 * 86_400_000  # the second delivery arrives a month later
REFUSED_ENVELOPES = (b"not an envelope", orjson.dumps({"i": [["too", "short"]], "c": []}))
# An alert: a mention of initech's X account (clients.example.toml: UTC, no business hours,
# SLA 30 minutes) left unanswered while the account's event time moves 2 hours on (a second
# mention). History, far from the clock: its deadline is swept at event time, so the alert
# is the same whenever the input arrives. The fixtures alone yield none.
INITECH_X = "1500000000000000001"
UNANSWERED_AT_MS = 1_795_000_000_000  # 2026-11-18
ALERT_LINES = (x_post(1_860_000_000_000_000_101, "880001", UNANSWERED_AT_MS, "@initech the export fails",
                      mention=("initech", INITECH_X)),
               x_post(1_860_000_000_000_000_102, "880002", UNANSWERED_AT_MS + 2 * 3_600_000, "@initech hello?",
                      mention=("initech", INITECH_X)))

ARRIVAL = ("ingested_at", "source", "raw_key", "version")

# What users read, table by table (ORDER BY everything: results compare as lists).
# Columns that name where a run's records went (topic prefix, partition, offset, wall-clock
# archive time) come last: they are compared within a store, not across stores (_comparable).
READS: dict[str, str] = {
    "changes": f"SELECT {', '.join(CHANGE_COLUMNS)} FROM changes FINAL ORDER BY ALL",
    "raw_events": "SELECT platform, raw_key, payload, source, received_at, outcome, reason, expected, via_account, "
                  "archived_at, topic, partition, offset FROM raw_events FINAL ORDER BY ALL",
    "dead_letters": "SELECT platform, raw_key, reason, received_at, payload, archived_at, topic, partition, offset "
                    "FROM dead_letters ORDER BY ALL",
    # An event's arrival columns (ingested_at, source, raw_key, version) are its latest arrival's,
    # by design (docs/architecture.md "Guarantees"): one row per event, its content unchanged.
    "interactions": f"SELECT {', '.join(c for c in INTERACTION_COLUMNS if c not in ARRIVAL)} "
                    "FROM interactions FINAL ORDER BY ALL",
    "threads": "SELECT * EXCEPT version FROM threads FINAL ORDER BY ALL",
    "conversations": "SELECT * EXCEPT version FROM conversations FINAL ORDER BY ALL",
    "connections": "SELECT * EXCEPT version FROM connections FINAL ORDER BY ALL",
    "responses": "SELECT * EXCEPT version FROM responses FINAL ORDER BY ALL",
    "alerts": "SELECT * EXCEPT version FROM alerts FINAL ORDER BY ALL",
    "activity_minutely": "SELECT * EXCEPT version FROM activity_minutely FINAL ORDER BY ALL",
}


@dataclass
class Run:
    """One store's reads after each delivery."""

    ns: Namespace
    after_first: dict[str, list[tuple[Any, ...]]]
    after_second: dict[str, list[tuple[Any, ...]]]
    dlq_alert: tuple[int, int]  # the "DLQ growing" alert's value after each delivery


def _namespace(broker_url: str, store_url: str, tmp: Path, migrations: Path | None) -> Namespace:
    """A namespace like tests/conftest.py's, its store built by ``migrations`` (default: all)."""
    name = unique_name("d")
    clients = tmp / "clients.toml"
    shutil.copy(REPO / "clients.example.toml", clients)
    settings = Settings(data_dir=tmp / "data", clients=clients, topic_prefix=name, store_database=name,
                        app_id=name, partitions=2, batch_delay_s=0.2, broker_url=broker_url, store_url=store_url)
    if migrations is None:
        migrate(store_url, settings)
    else:
        migrate(store_url, settings, directory=migrations)
    ensure_topics(broker_url, full_names(settings), settings.partitions)
    (tmp / "logs").mkdir()
    return Namespace(settings, broker_url, store_url, tmp / "logs")


def _deliver(ns: Namespace, received_at: int) -> None:
    """Every fixture line stamped ``received_at``, a line the normalizer refuses, and the
    envelopes the sink refuses; then one worker processes it all."""
    pub = Publisher(ns.settings, ns.broker_url)
    try:
        for platform, name in FILES.items():
            for line in (FIXTURES / f"{name}.jsonl").read_bytes().splitlines():
                pub.add(platform, line, "replay", received_at=received_at)
        pub.add("bluesky", b'{"did": "did:plc:x", "kind": "commit", "commit": 42', "replay",
                received_at=received_at)  # not JSON: a normalizer dead letter
        for line in ALERT_LINES:
            pub.add("x", line, "replay", received_at=received_at)
        pub.flush()
        for value in REFUSED_ENVELOPES:
            pub.producer.send(ns.settings.topic(INTERACTIONS), value, [])
        pub.flush()
    finally:
        pub.close()
    with ns.worker():
        ns.drain()


def _read(ns: Namespace) -> dict[str, list[tuple[Any, ...]]]:
    client = connect(ns.store_url, ns.settings)
    try:
        return {table: [tuple(r) for r in client.query(q).result_rows] for table, q in READS.items()}
    finally:
        client.close()


def _dlq_alert(ns: Namespace) -> int:
    """The provisioned "DLQ growing" alert's value, its window covering the whole test."""
    now = datetime.now(UTC)
    ctx = TimeContext(now - timedelta(days=1), now + timedelta(days=1), 3600)
    client = connect(ns.store_url, ns.settings)
    try:
        return int(client.query(expand(grafana_sql.ALERT_DLQ.sql, {}, ctx)).result_rows[0][0])
    finally:
        client.close()


def _twice(ns: Namespace) -> Run:
    _deliver(ns, FIRST_ARRIVAL_MS)
    first, alert_first = _read(ns), _dlq_alert(ns)
    _deliver(ns, FIRST_ARRIVAL_MS + MONTH_MS)
    return Run(ns, first, _read(ns), (alert_first, _dlq_alert(ns)))


# Later migrations the worker of this checkout needs to write at all (the open-items table and
# the rollup's columns it fills), unrelated to the keys 0009-0011 fixed: the old store has them.
WORKER_NEEDS = (12,)


def _old_migrations(tmp: Path) -> Path:
    """The migrations up to 0008: the schema before issue 9's keys (plus :data:`WORKER_NEEDS`)."""
    out = tmp / "migrations-0008"
    out.mkdir()
    for item in MIGRATIONS_DIR.iterdir():
        if item.name.endswith(".sql") and (int(item.name[:4]) <= 8 or int(item.name[:4]) in WORKER_NEEDS):
            (out / item.name).write_text(item.read_text(encoding="utf-8"), encoding="utf-8")
    return out


def _comparable(table: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows as two stores fed the same input can agree on: without the columns naming the run's
    topics and wall-clock times, nor those a 0008 store's background merges may have settled
    on the later arrival for (two arrivals in one partition under one key), which no copy can
    restore: a change's source, raw_key and version, a sink dead letter's times."""
    if table == "changes":
        return sorted(r[:8] for r in rows)  # CHANGE_COLUMNS end with source, raw_key, version
    if table == "raw_events":
        return sorted((*r[:4], None if r[3] == "sink" else r[4], *r[5:9]) for r in rows)
    if table == "dead_letters":
        return sorted((*r[:3], None if r[0] == "" else r[3], r[4]) for r in rows)
    return rows


@pytest.fixture(scope="module")
def runs(broker: Any, store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Two deliveries a month apart into a head store, and into a store built to 0008."""
    head = _twice(_namespace(broker.url, store_url, tmp_path_factory.mktemp("head"), None))
    tmp = tmp_path_factory.mktemp("old")
    old = _twice(_namespace(broker.url, store_url, tmp, _old_migrations(tmp)))
    yield {"head": head, "old": old}


def _diff(rows: list[tuple[Any, ...]], other: list[tuple[Any, ...]]) -> list[str]:
    """The first rows of ``rows`` missing from ``other`` (rows may hold lists: compared as text)."""
    known = {repr(r) for r in other}
    return [repr(r) for r in rows if repr(r) not in known][:3]


def _ms(value: datetime) -> int:
    return round((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000)


def _assert_identical(run: Run, table: str) -> None:
    first, second = run.after_first[table], run.after_second[table]
    assert first, f"{table}: nothing stored\n{run.ns.log_tail()}"
    assert second == first, (table, _diff(second, first), _diff(first, second))


def test_changes_identical_after_a_delivery_a_month_later(runs: dict[str, Run]) -> None:
    head = runs["head"]
    _assert_identical(head, "changes")
    deletes = [r for r in head.after_second["changes"] if r[0] in ("mastodon", "reddit") and r[2] == "delete"]
    assert {r[0] for r in deletes} == {"mastodon", "reddit"}  # arrival-timed deletes: kept at the first arrival
    assert all(_ms(r[3]) == FIRST_ARRIVAL_MS for r in deletes)
    # the 0008 schema kept a second row for each of them
    assert len(runs["old"].after_second["changes"]) == len(head.after_second["changes"]) + len(deletes)


def test_raw_events_keep_the_first_arrival_whatever_the_month(runs: dict[str, Run]) -> None:
    head = runs["head"]
    _assert_identical(head, "raw_events")
    received = {_ms(r[4]) for r in head.after_second["raw_events"] if r[3] != "sink"}
    assert received == {FIRST_ARRIVAL_MS}
    # the 0008 schema stored every payload twice (two months, two partitions; FINAL merges
    # across partitions at read time in chDB 26.9, so the later arrival showed instead)
    old = runs["old"].after_second["raw_events"]
    assert {_ms(r[4]) for r in old if r[3] != "sink"} == {FIRST_ARRIVAL_MS + MONTH_MS}
    client = connect(runs["old"].ns.store_url, runs["old"].ns.settings)
    try:
        stored = client.query("SELECT count() FROM raw_events WHERE source != 'sink'").result_rows[0][0]
    finally:
        client.close()
    assert stored == 2 * len([r for r in head.after_second["raw_events"] if r[3] != "sink"])


def test_dead_letters_keyed_by_content(runs: dict[str, Run]) -> None:
    head = runs["head"]
    _assert_identical(head, "dead_letters")
    rows = head.after_second["dead_letters"]
    sink = [r for r in rows if r[0] == ""]
    assert len(sink) == len(REFUSED_ENVELOPES) and all(r[1].startswith("sink:") for r in sink)
    assert len(rows) == len(sink) + 1  # and the normalizer's one
    assert head.dlq_alert == (1, 1)  # the alert counts a dead letter once, however often it arrives
    assert runs["old"].dlq_alert[1] > runs["old"].dlq_alert[0]


@pytest.mark.parametrize("table", ["interactions", "threads", "conversations", "connections", "responses",
                                   "alerts", "activity_minutely"])
def test_other_tables_identical(runs: dict[str, Run], table: str) -> None:
    _assert_identical(runs["head"], table)


def test_the_unanswered_mention_is_one_breached_alert(runs: dict[str, Run]) -> None:
    rows = runs["head"].after_second["alerts"]
    assert [(r[0], r[1], r[2], r[3], r[7]) for r in rows] == [
        ("initech", INITECH_X, "x", "1860000000000000101", "breached")], rows
    assert _ms(rows[0][5]) == UNANSWERED_AT_MS + 30 * 60_000  # due: the SLA after the mention


def _retried_flush(ns: Namespace, board: bool = True) -> int:
    """A flush whose insert is retried (the first attempt reached the store, its answer did not):
    the same rows twice. Returns the board's events_in for the stage (or, on the 0008 schema,
    which FINAL refuses, the sum the board made then)."""
    buf = MetricsBuffer("test-worker:1")
    buf.add("dedup-test", "t", records_in=3, events_in=7, dead_lettered=1)
    rows = buf.drain(lambda _t, _p: None)
    client = connect(ns.store_url, ns.settings)
    try:
        writer = TableWriter(client, "pipeline_metrics", METRIC_COLUMNS, ("minute", "written_at"), None, 1000)
        writer.write(rows)
        writer.write(rows)
        sql = PIPELINE_SQL if board else PIPELINE_SQL.replace("pipeline_metrics FINAL", "pipeline_metrics")
        got = {r[0]: r[1] for r in client.query(sql).result_rows}
        return int(got["dedup-test"])
    finally:
        client.close()


def test_pipeline_metrics_count_a_retried_flush_once(runs: dict[str, Run]) -> None:
    assert _retried_flush(runs["head"].ns) == 7


def test_store_filled_by_0008_migrates_to_the_heads_results(runs: dict[str, Run]) -> None:
    old, head = runs["old"], runs["head"]
    assert _retried_flush(old.ns, board=False) == 14  # the 0008 schema counted the retried flush twice
    client = connect(old.ns.store_url, old.ns.settings)
    try:  # a sink dead letter as 0008 keyed it (offsets restart: a later one would overwrite it)
        later = datetime.now(UTC) + timedelta(days=1)
        client.insert("raw_events", [["", "rapport.interactions:0:5", REFUSED_ENVELOPES[0].decode(), "sink", later,
                                      later, "rapport.interactions", 0, 5, "dead", "refused", 0, ""]],
                      column_names=["platform", "raw_key", "payload", "source", "received_at", "archived_at",
                                    "topic", "partition", "offset", "outcome", "reason", "expected", "via_account"])
    finally:
        client.close()
    before = _read(old.ns)
    assert any(r[1] == "rapport.interactions:0:5" for r in before["dead_letters"])
    migrate(old.ns.store_url, old.ns.settings)
    after = _read(old.ns)
    for table in ("changes", "raw_events", "dead_letters"):
        assert after[table] != before[table], f"{table}: the 0008 store showed no hole to fix"
    for table in READS:
        want = _comparable(table, head.after_second[table])
        got = _comparable(table, after[table])
        assert got == want, (table, _diff(got, want), _diff(want, got))
    client = connect(old.ns.store_url, old.ns.settings)
    try:
        got = {r[0]: r[1] for r in client.query(PIPELINE_SQL).result_rows}
    finally:
        client.close()
    assert int(got["dedup-test"]) == 7  # the copy keyed the retried flush's rows: counted once
    assert migrate(old.ns.store_url, old.ns.settings) == []  # and migrating again is a no-op
    # A run interrupted after its swap, before the ledger recorded it, runs again: it converges.
    client = connect(old.ns.store_url, old.ns.settings)
    try:
        for mig in load_migrations():
            if 9 <= mig.number <= 11:
                for stmt in mig.statements():
                    client.command(stmt)
        tables = {r[0] for r in client.query("SHOW TABLES").result_rows}
    finally:
        client.close()
    assert _read(old.ns) == after
    assert not {t for t in tables if t[-5:-4] == "_" and t[-4:].isdigit()}, tables  # no copy left behind
