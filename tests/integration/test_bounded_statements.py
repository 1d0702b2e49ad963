"""No statement grows with a batch or a backlog: a backlog goes through a store client whose bound is tiny.

Before the detection lookups were chunked, a backlog of a few million events stalled the
sink for good: "the minutes of known events" listed every event id of a full batch in one
``IN (...)`` and crossed ClickHouse's query size, and the retry built the same statement.
Here every Rapport client of the worker refuses statements over 64 KiB (setting
``RAPPORT_STORE_MAX_QUERY_BYTES``), so a backlog of full 5,000-row batches of Bluesky AT-URIs
(the longest ids) exercises every builder the way millions of events would at the
default bound; the tables must still equal the batch recomputation.
"""

from __future__ import annotations

import orjson
import pytest

from streams.chaos.check import diff, expected_rows, rollup_rows, rollup_truth, stored_rows
from streams.clients import load_clients
from streams.detect_io.open_items import expected_open_items, interaction_texts, refresh_open_items, stored_open_items
from streams.detect_io.queries import DetectStore
from streams.ingest.publisher import Publisher
from streams.simulator.traffic import Simulator
from streams.store.bounded import QueryTooLargeError
from streams.store.client import connect
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration
BOUND = 64 * 1024


def test_the_client_refuses_a_statement_over_its_bound_and_names_its_caller(namespace: Namespace) -> None:
    settings = namespace.settings.model_copy(update={"store_max_query_bytes": 4096})
    client = connect(namespace.store_url, settings)
    try:
        assert client.command("SELECT 1") == 1
        big = "SELECT count() FROM system.one WHERE dummy IN (" + ", ".join(["0"] * 3000) + ")"
        for call in (client.command, client.query, client.raw_query):
            with pytest.raises(QueryTooLargeError, match="test_the_client_refuses_a_statement"):
                call(big)
        # Insert data is not a statement: a block far over the bound goes through.
        client.command("CREATE TABLE bounded_probe (s String) ENGINE = MergeTree ORDER BY s")
        client.insert("bounded_probe", [["x" * 100] for _ in range(1000)], column_names=["s"])
        assert client.command("SELECT count() FROM bounded_probe") == 1000
    finally:
        client.close()


def test_a_backlog_of_full_batches_is_stored_and_detected_under_a_tiny_statement_bound(
        namespace: Namespace) -> None:
    ns = namespace
    clients = load_clients(ns.settings.clients)
    events = list(Simulator(clients, seed=31, start_ms=1_790_000_000_000).events(20_000))
    assert sum(1 for e in events if e.platform == "bluesky") > 3000
    pub = Publisher(ns.settings, ns.broker_url)
    for i, ev in enumerate(events):  # all of it before the worker starts: a backlog
        pub.add(ev.platform, orjson.dumps(ev.payload), ev.source, received_at=ev.event_ms + 5000 + i,
                via_account=ev.via_account or "")
    pub.close()
    ns.settings = ns.settings.model_copy(update={"batch_size": 5000})
    env_bound = {"RAPPORT_STORE_MAX_QUERY_BYTES": str(BOUND), "RAPPORT_BATCH_SIZE": "5000"}
    with ns.worker(extra_env=env_bound):
        ns.drain(timeout_s=600)
    assert "QueryTooLargeError" not in ns.log_tail()
    client = connect(ns.store_url, ns.settings)
    try:
        stored = client.command("SELECT count() FROM interactions FINAL")
        assert stored > 15_000
        problems = diff(expected_rows(clients, client), stored_rows(client))
        assert not problems, problems
        assert rollup_rows(client) == rollup_truth(client)
        want = expected_rows(clients, client)
        texts = interaction_texts(client)
        assert stored_open_items(client) == expected_open_items(want["responses"], want["alerts"], texts)
    finally:
        client.close()


def test_every_detection_lookup_stays_under_the_bound_whatever_its_input(namespace: Namespace) -> None:
    """Each builder, handed far more than one statement can hold, sends several statements."""
    settings = namespace.settings.model_copy(update={"store_max_query_bytes": BOUND})
    client = connect(namespace.store_url, settings)
    ids = {f"at://did:plc:{i:024d}/app.bsky.feed.post/{i:013d}" for i in range(2_000)}  # ~130 KB of ids: two bounds
    minutes = set(range(29_000_000, 29_000_000 + 20_000))  # ~180 KB as a list
    try:
        store = DetectStore(client)
        assert store.minutes_of({("acme", "did:plc:acme", "bluesky"): ids}) == {}
        assert store.thread_closure("acme", "did:plc:acme", "bluesky", ids, ids) == []
        assert store.deletes("acme", "did:plc:acme", "bluesky", ids) == []
        store.recompute_rollup(1, minutes={("acme", "did:plc:acme", "bluesky"): minutes})
        assert client.command("SELECT count() FROM activity_minutely") == 0
        assert refresh_open_items(store, 1, (), {("acme", "did:plc:acme", "bluesky"): ids}) > 1
        assert client.command("SELECT count() FROM open_items") == 0
    finally:
        client.close()
