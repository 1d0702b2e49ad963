"""Every bad input of issue 8 in one run among good payloads: each is one dead letter, nothing else.

Lines go through the publisher (what `rapport replay` uses); header and envelope cases
cannot come that way, so they are produced directly to ``rapport.raw.reddit`` and
``rapport.interactions`` in the same run. Every good payload must be stored, every bad
input must leave exactly one dead letter, and no worker may crash or stall.
"""

from __future__ import annotations

import orjson
import pytest

from streams.chaos.plan import nested_arrays, nested_objects
from streams.contracts.headers import HEADER_RECEIVED_AT, HEADER_SOURCE
from streams.contracts.topics import DLQ, INTERACTIONS, raw_topic
from streams.ingest.publisher import Publisher
from streams.interaction import CHANGE_COLUMNS, INTERACTION_COLUMNS
from streams.kafka_admin import high_watermarks
from streams.normalize.records import TEXT_MAX_CHARS
from streams.store.client import connect
from tests.integration.test_batch_commit import comment, expected_keys, stored_keys
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration


def good_row() -> list[object]:
    row: list[object] = []
    for name in INTERACTION_COLUMNS:
        if name in ("created_at", "ingested_at", "version"):
            row.append(1_790_000_000_000)
        elif name in ("client_created_at", "edited_at"):
            row.append(None)
        elif name == "mentioned_ids":
            row.append([])
        elif name == "deleted":
            row.append(0)
        else:
            row.append("x")
    return row


def test_all_bad_inputs_cost_one_dead_letter_each(namespace: Namespace) -> None:
    ns = namespace
    good = [comment(i) for i in range(30)]
    nul_comment = comment(1000, body="\u0000" * 100_000)  # 600 KB of JSON: stored, text capped
    bad_lines: list[tuple[bytes, str]] = [
        (nested_objects(300), "nested deeper"),
        (nested_objects(1000), "nested deeper"),
        (nested_objects(100_000), "depth limit"),
        (nested_arrays(300), "nested deeper"),
        (nested_arrays(1000), "nested deeper"),
        (nested_arrays(100_000), "depth limit"),
        (comment(2000, body="x" * 2 * 1024 * 1024), "over the record limit"),
        (comment(2001, body="\u0000" * 262_144), "over the record limit"),  # 1.57 MB once escaped
        (b'{"kind":"t1","data":{"id":"u8","body":"\xff\xfe"}}', "not valid UTF-8"),
        (b'{"kind":"t1","data":{"id":"trunc","name":"t1_tr', "not JSON"),
    ]
    mixed = b"[" + comment(3000) + b",42," + b'{"kind":"t1"}' + b"]"  # one good, two bad
    pub = Publisher(ns.settings, ns.broker_url)
    raw = ns.settings.topic(raw_topic("reddit"))
    envelopes = ns.settings.topic(INTERACTIONS)
    row = good_row()
    bad_envelopes = [
        orjson.dumps({"i": [row[:3]], "c": []}),  # wrong columns (an older writer)
        orjson.dumps({"i": [row[:-1]], "c": []}),  # one column missing
        orjson.dumps({"i": [[*row, "new"]], "c": []}),  # one column extra (a newer writer)
        orjson.dumps({"i": [], "c": [["x"] * (len(CHANGE_COLUMNS) + 2)]}),  # change of wrong width
        orjson.dumps([1, 2, 3]),  # not an object
    ]
    try:
        for n, (line, _) in enumerate(bad_lines):
            for payload in good[n * 3:(n + 1) * 3]:
                pub.add("reddit", payload, "test")
            pub.add("reddit", line, "test")
        pub.add("reddit", nul_comment, "test")
        pub.add("reddit", mixed, "test")
        pub.flush()
        for n, header in enumerate((b"99999999999999999", b"soon")):  # distinct payloads: distinct archive keys
            pub.producer.send(raw, comment(4000 + n), [(HEADER_SOURCE, b"test"), (HEADER_RECEIVED_AT, header)])
        for value in bad_envelopes:
            pub.producer.send(envelopes, value, [])
        pub.flush()
    finally:
        pub.close()
    assert pub.refused == 2
    with ns.worker():
        ns.drain()
    client = connect(ns.store_url, ns.settings)
    try:
        dead = client.query("SELECT reason FROM raw_events FINAL WHERE outcome = 'dead'").result_rows
        longest_text = client.query("SELECT max(lengthUTF8(text)) FROM interactions FINAL").result_rows[0][0]
        archived_nuls = client.query(
            "SELECT max(length(payload)) FROM raw_events FINAL WHERE outcome = 'ok'").result_rows[0][0]
    finally:
        client.close()
    final, keys = stored_keys(ns)
    want = expected_keys(ns, [*good, nul_comment, comment(3000)])
    assert final == len(want) and keys == want, ns.log_tail()
    reasons = [r[0] for r in dead]
    expected_count = len(bad_lines) + 2 + 2 + len(bad_envelopes)
    assert len(reasons) == expected_count, "\n".join(sorted(reasons))
    for _, needle in bad_lines:
        assert any(needle in r for r in reasons), (needle, reasons)
    assert sum("received_at header" in r for r in reasons) == 2
    assert sum("interactions envelope refused" in r for r in reasons) == len(bad_envelopes)
    assert longest_text == TEXT_MAX_CHARS  # cut in code points; the archive keeps the whole payload
    assert archived_nuls >= 600_000
    dlq = high_watermarks(ns.broker_url, [ns.settings.topic(DLQ)])
    assert sum(dlq.values()) >= expected_count  # every dead letter also reached the DLQ topic
    assert "Traceback" not in ns.log_tail()
