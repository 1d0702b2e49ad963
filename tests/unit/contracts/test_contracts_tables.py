"""Writers made from table specs: the spec's columns, times and month column, rows of any sequence."""

from __future__ import annotations

import orjson

from streams.contracts.archive import ARCHIVE_COLUMNS, OUTCOME_OK, ArchiveRow
from streams.contracts.tables import CHANGES, INTERACTIONS, PIPELINE_METRICS, RAW_EVENTS
from streams.detect_io.tables import TABLES
from streams.store.writer import TableWriter


def test_for_spec_takes_columns_times_and_month_from_the_spec() -> None:
    inter = TableWriter.for_spec(None, INTERACTIONS, 10)  # type: ignore[arg-type]
    assert inter.table == "interactions" and tuple(inter.columns) == INTERACTIONS.columns
    assert [inter.columns[i] for i in inter.time_idx] == ["created_at", "client_created_at", "ingested_at",
                                                          "edited_at"]
    assert inter.month_idx == INTERACTIONS.position("created_at")
    for spec in (CHANGES, RAW_EVENTS, PIPELINE_METRICS, *(t.store_table for t in TABLES)):
        writer = TableWriter.for_spec(None, spec, 10)  # type: ignore[arg-type]
        assert writer.month_idx is None and tuple(writer.columns) == spec.columns, spec.name


def test_archive_rows_are_written_as_arrays_in_column_order() -> None:
    row = ArchiveRow("reddit", "k", "{}", "stream", 1_795_608_060_123, 1_795_608_061_000, "t", 0, 7,
                     OUTCOME_OK, "", 1, "")
    writer = TableWriter.for_spec(None, RAW_EVENTS, 10)  # type: ignore[arg-type]
    decoded = orjson.loads(writer.encode([row]))
    assert decoded == ["reddit", "k", "{}", "stream", 1_795_608_060.123, 1_795_608_061, "t", 0, 7, "ok", "", 1, ""]
    assert dict(zip(ARCHIVE_COLUMNS, row, strict=True))["offset"] == row.offset == 7
    untimed = TableWriter(None, "t", ARCHIVE_COLUMNS, (), None, 10)  # type: ignore[arg-type]
    assert orjson.loads(untimed.encode([row]))[4] == row.received_at  # a NamedTuple without times, too


def test_the_normalizer_archives_full_rows_by_name() -> None:
    """The batch path builds archive rows from plain tuples (fast): each must still be a whole row."""
    from pathlib import Path

    from streams.clients import load_clients
    from streams.contracts.headers import HEADER_RECEIVED_AT, HEADER_SOURCE, HEADER_VIA_ACCOUNT
    from streams.normalize.base import AccountIndex
    from streams.normalize.records import RawRecord, normalize_records

    index = AccountIndex.build(load_clients(Path(__file__).resolve().parents[3] / "clients.example.toml"))
    good = orjson.dumps({"kind": "t1", "data": {"id": "c1", "name": "t1_c1", "author": "u1", "body": "hi",
                                                "parent_id": "t3_r", "link_id": "t3_r", "subreddit": "acme",
                                                "created_utc": 1_790_000_000.0}})
    skipped = orjson.dumps({"kind": "t5", "data": {"id": "s1"}})  # a subreddit: not a kind we read
    headers = {HEADER_SOURCE: "listen:r/acme", HEADER_RECEIVED_AT: "1790000000500", HEADER_VIA_ACCOUNT: "v"}
    value = b"[" + good + b"," + skipped + b",42]"
    batch = normalize_records([RawRecord("rapport.raw.reddit", 3, 9, "reddit", value, headers, 1)], index, 7)
    rows = batch.archive_rows
    assert all(type(r) is ArchiveRow and len(r) == len(ARCHIVE_COLUMNS) for r in rows)
    assert [r.outcome for r in rows] == ["ok", "skipped", "dead"], rows
    ok = rows[0]
    assert (ok.platform, ok.source, ok.received_at, ok.archived_at, ok.topic, ok.partition, ok.offset,
            ok.via_account, ok.reason) == ("reddit", "listen:r/acme", 1_790_000_000_500, 7, "rapport.raw.reddit",
                                           3, 9, "v", "")
    assert ok.expected == batch.events_out >= 1 and orjson.loads(ok.payload) == orjson.loads(good)
    assert rows[1].reason and rows[1].expected == 0 and rows[2].reason == batch.dead_letters[0]["reason"]
