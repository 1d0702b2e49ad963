"""A worker SIGKILLed mid-run and restarted ends with the tables of an uninterrupted run."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from streams.chaos.check import diff, rollup_rows, rollup_truth, stored_rows
from streams.clients import load_clients
from streams.contracts.topics import full_names
from streams.embedded.broker import Broker
from streams.ingest.publisher import Publisher
from streams.kafka_admin import ensure_topics
from streams.settings import Settings
from streams.simulator.traffic import Simulator
from streams.store.client import connect
from streams.store.migrations import migrate
from tests.support.interactions import arrival_payloads
from tests.support.stack import REPO, Namespace, stop_process, unique_name

pytestmark = pytest.mark.integration
START_MS = 1_790_000_000_000


def second_namespace(broker: Broker, store_url: str, tmp_path: Path) -> Namespace:
    name = unique_name("t")
    clients = tmp_path / "clients-b.toml"
    shutil.copy(REPO / "clients.example.toml", clients)
    settings = Settings(data_dir=tmp_path / "data-b", clients=clients, topic_prefix=name, store_database=name,
                        app_id=name, partitions=2, batch_delay_s=0.2, broker_url=broker.url, store_url=store_url)
    migrate(store_url, settings)
    ensure_topics(broker.url, full_names(settings), settings.partitions)
    log_dir = tmp_path / "logs-b"
    log_dir.mkdir()
    return Namespace(settings, broker.url, store_url, log_dir)


def tables(ns: Namespace) -> tuple[dict[str, set[tuple[Any, ...]]], set[tuple[Any, ...]]]:
    client = connect(ns.store_url, ns.settings)
    try:
        rollup = rollup_rows(client)
        truth = rollup_truth(client)
        assert rollup == truth, (sorted(rollup - truth)[:5], sorted(truth - rollup)[:5])
        return stored_rows(client), rollup
    finally:
        client.close()


def test_worker_killed_mid_run_ends_with_the_uninterrupted_tables(namespace: Namespace, broker: Broker,
                                                                  store_url: str, tmp_path: Path) -> None:
    events = list(Simulator(load_clients(namespace.settings.clients), seed=23, start_ms=START_MS).events(6000))
    payloads = arrival_payloads(events)  # the same arrival times in both runs

    # The uninterrupted run.
    calm = namespace
    pub = Publisher(calm.settings.model_copy(update={"publish_batch": 20}), calm.broker_url)
    for platform, body, source, via, received in payloads:
        pub.add(platform, body, source, received_at=received, via_account=via)
    pub.close()
    with calm.worker():
        calm.drain()
    want, want_rollup = tables(calm)

    # The same payloads, published in slices; the worker is killed twice while it works.
    ns = second_namespace(broker, store_url, tmp_path)
    client = connect(ns.store_url, ns.settings)
    pub = Publisher(ns.settings.model_copy(update={"publish_batch": 20}), ns.broker_url)
    try:
        for kill_after in (1500, 3500, None):
            worker = ns.start_worker(f"worker-{kill_after}")
            ns.workers.append(worker)
            end = kill_after or len(payloads)
            start = 0 if kill_after == 1500 else (1500 if kill_after == 3500 else 3500)
            for i in range(start, end):
                platform, body, source, via, received = payloads[i]
                pub.add(platform, body, source, received_at=received, via_account=via)
                if i % 250 == 249:
                    pub.flush()
                    time.sleep(0.05)
            pub.flush()
            if kill_after is None:
                break
            # Kill as soon as detection has written something of this slice: mid-batch.
            seen = client.query("SELECT count() FROM threads").result_rows[0][0]
            deadline = time.monotonic() + 60
            while client.query("SELECT count() FROM threads").result_rows[0][0] <= seen:
                assert time.monotonic() < deadline, ns.log_tail()
                time.sleep(0.02)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            ns.workers.remove(worker)
        pub.close()
        ns.drain(timeout_s=180)
        got, got_rollup = tables(ns)
    finally:
        client.close()
        for w in list(ns.workers):
            stop_process(w)
    problems = diff(want, got)
    assert not problems, problems
    assert got_rollup == want_rollup
    assert sum(len(r) for r in got.values()) > 1000
