"""Detection tables: DDL, row types and writer columns agree; rows encode as the store wants."""

from __future__ import annotations

import re

import orjson
from aiokafka.partitioner import DefaultPartitioner

from streams.contracts.envelopes import Envelope
from streams.detect.responses import NEVER
from streams.detect.rows import AlertRow, ConversationRow, ResponseRow, ThreadRow, Updates, columns
from streams.detect_io.engine import Batch, Output, partition_of, sweep_watermark
from streams.detect_io.tables import ALERTS, CONNECTIONS, RESPONSES, TABLES, THREADS, Collector, record
from streams.interaction import CHANGE_COLUMNS, INTERACTION_COLUMNS
from streams.store.migrations import load_migrations
from streams.store.writer import TableWriter


def ddl(table: str) -> tuple[list[tuple[str, str]], str]:
    for mig in load_migrations():
        for stmt in mig.statements():
            m = re.match(rf"CREATE TABLE IF NOT EXISTS {table}\s*\((.*)\)\s*(ENGINE.*)", stmt, re.S)
            if m:
                cols = [tuple(line.strip().rstrip(",").split(" ", 1)) for line in m.group(1).strip().splitlines()]
                return cols, m.group(2)  # type: ignore[return-value]
    raise AssertionError(f"no CREATE TABLE for {table}")


def test_ddl_columns_are_the_row_columns_then_flag_and_version() -> None:
    for spec in TABLES:
        cols, engine = ddl(spec.name)
        assert [name for name, _ in cols] == list(spec.columns), spec.name
        assert list(spec.columns[: len(columns(spec.row_type))]) == list(columns(spec.row_type))
        assert f"ReplacingMergeTree(version, {spec.flag_column})" in engine, spec.name
        assert re.search(r"ORDER BY \(client_id, account_id, platform", engine), spec.name
        assert "PARTITION BY" not in engine, f"{spec.name}: a row's times change, so it must not move partitions"
        types = dict(cols)
        assert types[spec.flag_column] == "Bool" and types["version"] == "UInt64"
        for col in spec.time_columns:
            assert "DateTime64(3, 'UTC')" in types[col], (spec.name, col)


def test_sort_key_is_the_row_key() -> None:
    for spec, key in ((THREADS, ("platform", "root_id")), (CONNECTIONS, ("platform", "person_id")),
                      (RESPONSES, ("platform", "event_id")), (ALERTS, ("platform", "event_id"))):
        _, engine = ddl(spec.name)
        assert f"ORDER BY (client_id, account_id, {', '.join(key)})" in engine
    _, engine = ddl("conversations")
    assert "ORDER BY (client_id, account_id, platform, root_id, person_id)" in engine


def test_rollup_table_is_keyed_by_minute_and_partitioned_by_it() -> None:
    cols, engine = ddl("activity_minutely")
    assert [n for n, _ in cols][:4] == ["client_id", "account_id", "platform", "minute"]
    assert "ORDER BY (client_id, account_id, platform, minute)" in engine
    assert "PARTITION BY toYYYYMM(minute)" in engine


def test_writer_encodes_rows_in_ddl_order_with_seconds() -> None:
    row = ResponseRow("c", "a", "x", "e1", "p1", 1_000_123, 4_600_000, None, None, None, "open")
    writer = TableWriter(None, RESPONSES.name, RESPONSES.columns, RESPONSES.time_columns, None, 10)  # type: ignore[arg-type]
    body = writer.encode([RESPONSES.store_row(row, False, 7)])
    assert body == b'["c","a","x","e1","p1",1000.123,4600,null,null,null,"open",false,7]\n'


def test_collector_keeps_the_last_row_per_key_and_flags_deletions() -> None:
    t1 = ThreadRow("c", "a", "mastodon", "r", 1, 0, 1, 0, 5, 5)
    t2 = ThreadRow("c", "a", "mastodon", "r", 2, 1, 2, 0, 5, 9)
    gone = ThreadRow("c", "a", "mastodon", "old", 0, 0, 0, 0, 0, 0, retracted=True)
    withdrawn = AlertRow("c", "a", "x", "e", 1, 1, None, "withdrawn", "t")
    col = Collector()
    col.add(Updates(threads=(t1, gone), alerts=(withdrawn,)))
    col.add(Updates(threads=(t2,)))
    rows = col.store_rows(version=42)
    values = [getattr(t2, c) for c in columns(ThreadRow)]
    assert sorted(rows["threads"]) == sorted([[*values, 42], [*(getattr(gone, c) for c in columns(ThreadRow)), 42]])
    assert rows["alerts"][0][-2:] == [True, 42]  # a withdrawn alert is a deleted row


def test_rows_a_rebuild_no_longer_produces_are_superseded() -> None:
    thread, flag = THREADS.gone(ThreadRow("c", "a", "x", "r", 1, 0, 1, 0, 5, 5))
    assert flag and isinstance(thread, ThreadRow) and thread.retracted
    conv = ConversationRow("c", "a", "x", "r", "p", "h", 2, "person", 1, 2)
    resp = ResponseRow("c", "a", "x", "e", "p", 1, 2, None, None, None, "open")
    assert RESPONSES.gone(resp) == (resp, True)
    assert RESPONSES.store_row(resp, True, 3)[-2:] == [True, 3]
    assert columns(ConversationRow)[-1] == "retracted" and conv.retracted is False


def test_topic_records_carry_the_rows_of_one_account() -> None:
    out = Output(version=1)
    out.add(Updates(threads=(ThreadRow("c", "a", "x", "r1", 1, 0, 1, 0, 5, 5),
                             ThreadRow("c", "a", "x", "r2", 1, 0, 1, 0, 6, 6)),
                    alerts=(AlertRow("c", "a", "x", "e1", 1, 1, None, "breached", "t"),
                            AlertRow("c", "a", "x", "e2", 2, 2, None, "breached", "t"))))
    recs = out.topic_records()
    assert [(k, len(v["rows"])) for k, v in recs["threads"]] == [("c:a", 2)]
    assert [(k, len(v["rows"])) for k, v in recs["alerts"]] == [("c:a", 2)]
    first = orjson.loads(orjson.dumps(recs["alerts"][0][1]))
    assert first["client_id"] == "c" and first["rows"][0] == record(
        AlertRow("c", "a", "x", "e1", 1, 1, None, "breached", "t"))


def test_sweep_watermark_is_the_clock_when_live_else_event_time() -> None:
    hour = 3_600_000
    clock = 100 * hour
    assert sweep_watermark(NEVER, clock, hour) == NEVER  # nothing seen: nothing to sweep
    assert sweep_watermark(clock - hour // 2, clock, hour) == clock  # live
    assert sweep_watermark(clock - hour, clock, hour) == clock  # the window's edge is live
    assert sweep_watermark(clock - 2 * hour, clock, hour) == clock - 2 * hour  # replaying history
    assert sweep_watermark(clock + hour, clock, hour) == clock  # events ahead of the clock: never early


def test_partition_of_matches_the_producers_partitioner() -> None:
    part = DefaultPartitioner()
    for key in ("acme:900001", "globex:did:plc:globexgggggggggggggggggg", "initech:initech_help", "x:y"):
        for n in (1, 2, 4, 7):
            assert partition_of(key, n) == part(key.encode(), list(range(n)), list(range(n)))


def test_batch_groups_by_account_and_keeps_unattributed_changes_apart() -> None:
    row = [None] * len(INTERACTION_COLUMNS)
    row[:6] = ["c", "a", "x", "e1", "reply", "p1"]
    row[13], row[INTERACTION_COLUMNS.index("created_at")] = ["a"], 1000
    change = ["x", "e1", "delete", 5, "", "p1", "", "", "stream", "k", 1]
    own = ["x", "e1", "delete", 5, "", "p1", "c", "a", "stream", "k", 1]
    assert len(change) == len(CHANGE_COLUMNS)
    batch = Batch.of([Envelope([row], [change, own])])
    msgs, changes = batch.by_key["c:a"]
    assert msgs[0].mentioned_ids == ("a",) and [c.client_id for c in changes] == ["c"]
    assert [c.client_id for c in batch.unattributed] == [""]
    assert batch.events == 3


def test_batch_counts_signals_for_watermark_and_minutes_without_decoding_them() -> None:
    def row(event_id: str, kind: str, at: int) -> list[object]:
        r: list[object] = [None] * len(INTERACTION_COLUMNS)
        r[:6] = ["c", "a", "x", event_id, kind, "p1"]
        r[13], r[INTERACTION_COLUMNS.index("created_at")] = [], at
        return r

    batch = Batch.of([Envelope([row("m", "reply", 60_000), row("like:p:m", "like", 185_000)], [])])
    assert [m.event_id for m in batch.by_key["c:a"][0]] == ["m"]
    assert batch.latest["c:a"] == 185_000
    assert batch.minutes[("c", "a", "x")] == {1, 3}
    assert batch.event_ids()[("c", "a", "x")] == {"m", "like:p:m"}
