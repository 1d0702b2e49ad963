"""Nothing lost, nothing duplicated: a worker SIGKILLed mid-stream and started again."""

from __future__ import annotations

import signal
import time

import orjson
import pytest

from streams.clients import load_clients
from streams.ingest.publisher import Publisher
from streams.normalize.base import AccountIndex
from streams.normalize.records import RawRecord, normalize_records
from streams.simulator.traffic import Simulator
from streams.store.client import connect
from tests.support.stack import Namespace, stop_process

pytestmark = pytest.mark.integration


def expected_keys(ns: Namespace, events: list) -> set[tuple[str, str, str, str]]:
    """The distinct interactions the pure normalizer yields for these events (the reference)."""
    index = AccountIndex.build(load_clients(ns.settings.clients))
    keys: set[tuple[str, str, str, str]] = set()
    for ev in events:
        rec = RawRecord("t", 0, 0, ev.platform, orjson.dumps(ev.payload),
                        {"source": ev.source, "received_at": "1790000000000", "via_account": ev.via_account or ""}, 1)
        batch = normalize_records([rec], index, 1)
        for env in batch.envelopes.values():
            for row in env.interactions:
                keys.add((row[0], row[1], row[2], row[3]))
    return keys


def test_worker_killed_mid_stream_loses_and_duplicates_nothing(namespace: Namespace) -> None:
    ns = namespace
    sim = Simulator(load_clients(ns.settings.clients), seed=11, start_ms=1_790_000_000_000)
    events = list(sim.events(6000))
    want = expected_keys(ns, events)
    pub = Publisher(ns.settings.model_copy(update={"publish_batch": 20}), ns.broker_url)
    client = connect(ns.store_url, ns.settings)
    try:
        worker = ns.start_worker("worker-1")
        ns.workers.append(worker)
        for i, ev in enumerate(events):
            pub.add(ev.platform, orjson.dumps(ev.payload), ev.source, via_account=ev.via_account or "")
            if i % 500 == 499:
                pub.flush()
                time.sleep(0.3)
            if i == 3000:
                pub.flush()
                # Kill as soon as something was stored: the worker is mid-stream.
                deadline = time.monotonic() + 60
                while client.query("SELECT count() FROM interactions").result_rows[0][0] == 0:
                    assert time.monotonic() < deadline, ns.log_tail()
                    time.sleep(0.1)
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                ns.workers.remove(worker)
        pub.close()
        with ns.worker():
            ns.drain(timeout_s=180)
        final = client.query("SELECT count() FROM interactions FINAL").result_rows[0][0]
        stored = {tuple(r) for r in client.query(
            "SELECT client_id, account_id, platform, event_id FROM interactions FINAL").result_rows}
    finally:
        client.close()
        for w in list(ns.workers):
            stop_process(w)
    assert final == len(want)
    assert stored == want
