"""The first end-to-end slice through the real Tansu broker and the real chDB store."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.ingest.publisher import Publisher
from streams.store.client import connect
from tests.support.stack import Namespace

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
pytestmark = pytest.mark.integration


def _query(ns: Namespace, sql: str) -> list[tuple]:
    client = connect(ns.store_url, ns.settings)
    try:
        return [tuple(r) for r in client.query(sql).result_rows]
    finally:
        client.close()


def test_bluesky_fixture_flows_to_the_store(namespace: Namespace) -> None:
    ns = namespace
    lines = (FIXTURES / "bluesky_jetstream.jsonl").read_bytes().splitlines()
    pub = Publisher(ns.settings, ns.broker_url)
    for line in lines:
        pub.add("bluesky", line, "replay")
    pub.add("bluesky", b'{"did": "did:plc:x", "kind": "commit", "commit": 42', "replay")  # not JSON
    pub.add("bluesky", b'{"kind": "commit", "time_us": "soon"}', "replay")  # JSON, malformed
    pub.close()
    with ns.worker():
        ns.drain()
    rows = _query(ns, "SELECT client_id, kind, event_id, parent_id, root_id FROM interactions FINAL "
                      "ORDER BY created_at, event_id")
    assert rows, ns.log_tail()
    assert {r[0] for r in rows} <= {"acme", "globex"}
    brand_post = "at://did:plc:brandaaaaaaaaaaaaaaaaaaa/app.bsky.feed.post/3lbpost0001"
    by_id = {r[2]: r for r in rows}
    assert by_id[brand_post][1] == "post"
    alice = "at://did:plc:alicealicealicealiceali/app.bsky.feed.post/3lapost0001"
    assert by_id[alice][1] == "reply"
    assert by_id[alice][3] == brand_post and by_id[alice][4] == brand_post
    dead = _query(ns, "SELECT reason, topic, partition FROM dead_letters ORDER BY reason")
    assert len(dead) == 2, dead
    assert any("not JSON" in r[0] for r in dead)
    assert all(r[1] == ns.settings.topic("raw.bluesky") for r in dead)
    archived = _query(ns, "SELECT count() FROM raw_events FINAL")[0][0]
    assert archived == len(lines) + 2


def test_redelivery_duplicates_nothing(namespace: Namespace) -> None:
    ns = namespace
    lines = (FIXTURES / "reddit.jsonl").read_bytes().splitlines()
    pub = Publisher(ns.settings, ns.broker_url)
    for _ in range(3):  # the same payloads three times: as a broker redelivery would
        for line in lines:
            pub.add("reddit", line, "replay")
        pub.flush_arrays()
    pub.close()
    with ns.worker():
        ns.drain()
    final = _query(ns, "SELECT count() FROM interactions FINAL")[0][0]
    distinct = _query(ns, "SELECT uniqExact(client_id, account_id, platform, event_id) FROM interactions")[0][0]
    assert final == distinct > 0, ns.log_tail()


def test_backfill_spanning_years_is_split_by_month(namespace: Namespace) -> None:
    ns = namespace
    pub = Publisher(ns.settings, ns.broker_url)
    base = 1_500_000_000.0  # 2017
    n = 150  # 150 months: more partitions than one insert may touch
    for i in range(n):
        thing = {"kind": "t1", "data": {"id": f"c{i}", "name": f"t1_c{i}", "author": f"user{i}",
                                        "body": "hello", "parent_id": "t3_root", "link_id": "t3_root",
                                        "subreddit": "acme", "created_utc": base + i * 31 * 86400}}
        pub.add("reddit", orjson.dumps(thing), "listen:r/acme")
    pub.close()
    with ns.worker():
        ns.drain()
    months = _query(ns, "SELECT uniqExact(toYYYYMM(created_at)), count() FROM interactions FINAL")[0]
    assert months[1] == n, ns.log_tail()
    assert months[0] > 100
