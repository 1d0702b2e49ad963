"""A rolling upgrade through the real broker, store and worker: envelopes of both versions are read.

Envelopes are produced to ``rapport.interactions`` as workers of each version write them
(version 1 with no version, version 2 naming its columns, a newer writer's version 2 with
its columns reordered and one more), beside raw payloads the worker normalizes itself
with ``RAPPORT_ENVELOPE_VERSION=1`` (an upgraded worker during the upgrade). Every row
must be stored and detected once; envelopes no version can store (an unknown version, a
version 2 lacking a column the store needs) are one dead letter each with their reason.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.clients import load_clients
from streams.contracts.envelopes import Envelope, encode_envelope
from streams.contracts.headers import HEADER_RECEIVED_AT, HEADER_SOURCE
from streams.contracts.tables import CHANGES, INTERACTIONS
from streams.contracts.topics import INTERACTIONS as INTERACTIONS_TOPIC
from streams.ingest.publisher import Publisher
from streams.normalize.base import AccountIndex
from streams.normalize.records import RawRecord, normalize_records
from streams.store.client import connect
from tests.integration.test_batch_commit import comment, expected_keys, stored_keys
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration


def envelopes_of(ns: Namespace, payloads: list[bytes]) -> list[Envelope]:
    """The envelopes the normalizer makes of these Reddit payloads."""
    index = AccountIndex.build(load_clients(ns.settings.clients))
    recs = [RawRecord("t", 0, n, "reddit", p, {HEADER_SOURCE: "test", HEADER_RECEIVED_AT: "1790000000000"}, 1)
            for n, p in enumerate(payloads)]
    return list(normalize_records(recs, index, 1).envelopes.values())


def newer_writer(env: Envelope) -> bytes:
    """Version 2 as a later release might write it: columns reversed, a ``sentiment`` column more."""
    cols = [*reversed(INTERACTIONS.columns), "sentiment"]
    rows = [[*reversed(row), 0.25] for row in env.interactions]
    return orjson.dumps({"v": 2, "columns": {"i": cols, "c": list(CHANGES.columns)}, "i": rows, "c": env.changes})


def test_a_worker_reads_old_and_new_envelopes(namespace: Namespace) -> None:
    ns = namespace
    sets = [[comment(100 * k + i) for i in range(8)] for k in range(4)]
    v1, v2, newer = (envelopes_of(ns, s) for s in sets[:3])
    assert v1 and v2 and newer and all(env.interactions for env in (*v1, *v2, *newer))
    lacking: dict[str, Any] = orjson.loads(encode_envelope(v2[0], 2))
    gone = INTERACTIONS.position("event_id")
    lacking["columns"]["i"] = [c for c in INTERACTIONS.columns if c != "event_id"]
    lacking["i"] = [[v for n, v in enumerate(row) if n != gone] for row in lacking["i"]]
    bad = [orjson.dumps({"v": 3, "i": [], "c": []}), orjson.dumps(lacking)]
    topic = ns.settings.topic(INTERACTIONS_TOPIC)
    pub = Publisher(ns.settings, ns.broker_url)
    try:
        for payload in sets[3]:
            pub.add("reddit", payload, "test")
        for value in [*(encode_envelope(e, 1) for e in v1), *(encode_envelope(e, 2) for e in v2),
                      *(newer_writer(e) for e in newer), *bad]:
            pub.producer.send(topic, value, [])
        pub.flush()
    finally:
        pub.close()
    with ns.worker({"RAPPORT_ENVELOPE_VERSION": "1"}):
        ns.drain()
    final, keys = stored_keys(ns)
    want = expected_keys(ns, [p for s in sets for p in s])
    assert final == len(want) == 32 and keys == want, ns.log_tail()
    client = connect(ns.store_url, ns.settings)
    try:
        dead = sorted(r[0] for r in client.query(
            "SELECT reason FROM raw_events FINAL WHERE outcome = 'dead'").result_rows)
        posts = client.query("SELECT sum(posts) FROM threads FINAL WHERE root_id = 't3_root'").result_rows[0][0]
    finally:
        client.close()
    assert len(dead) == 2, dead
    assert "interactions envelope refused: envelope version 3 is not one this worker reads" in dead[0], dead
    assert "i rows lack column 'event_id'" in dead[1], dead
    assert posts == 32  # detection saw every reply, whatever envelope it came in
    log = (ns.log_dir / "worker.log").read_text(errors="replace")
    assert "carry columns this worker does not write, stored without them: i.sentiment" in log
