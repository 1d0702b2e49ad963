"""The batch commit (streams/agents/commit.py) through the real broker, store and workers.

An exception inside a batch costs only the record that raises; a worker stopped (SIGTERM)
while a batch is in flight leaves that batch uncommitted, and the next worker stores it
once: nothing lost, nothing duplicated after FINAL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streams.clients import load_clients
from streams.contracts.topics import raw_topic
from streams.drain import committed_offsets
from streams.embedded.children import first_line
from streams.ingest.publisher import Publisher
from streams.kafka_admin import high_watermarks
from streams.normalize.base import AccountIndex
from streams.normalize.records import RawRecord, normalize_records
from streams.store.client import connect
from streams.store.migrations import migrate
from tests.support.stack import REPO, Namespace, stop_process, wait_until

pytestmark = pytest.mark.integration


def comment(i: int, body: str = "hello") -> bytes:
    """A Reddit comment in r/acme (attributed to the example clients file's acme account)."""
    return orjson.dumps({"kind": "t1", "data": {
        "id": f"c{i}", "name": f"t1_c{i}", "author": f"user{i}", "body": body, "parent_id": "t3_root",
        "link_id": "t3_root", "subreddit": "acme", "created_utc": 1_790_000_000.0 + i}})


def expected_keys(ns: Namespace, payloads: list[bytes]) -> set[tuple[str, str, str, str]]:
    """The distinct interactions the pure normalizer yields for these payloads (the reference)."""
    index = AccountIndex.build(load_clients(ns.settings.clients))
    keys: set[tuple[str, str, str, str]] = set()
    for payload in payloads:
        rec = RawRecord("t", 0, 0, "reddit", payload, {"source": "test", "received_at": "1790000000000"}, 1)
        for env in normalize_records([rec], index, 1).envelopes.values():
            keys.update((row[0], row[1], row[2], row[3]) for row in env.interactions)
    return keys


def stored_keys(ns: Namespace) -> tuple[int, set[tuple[str, str, str, str]]]:
    client = connect(ns.store_url, ns.settings)
    try:
        final = client.query("SELECT count() FROM interactions FINAL").result_rows[0][0]
        keys = {tuple(r) for r in client.query(
            "SELECT client_id, account_id, platform, event_id FROM interactions FINAL").result_rows}
    finally:
        client.close()
    return final, keys  # type: ignore[return-value]


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_a_record_that_raises_costs_one_dead_letter_not_its_batch(namespace: Namespace) -> None:
    ns = namespace
    good = [comment(i) for i in range(40)]
    poison = nested(300)  # valid JSON that orjson cannot serialise again (255 levels at most)
    pub = Publisher(ns.settings, ns.broker_url)
    for payload in good[:20]:
        pub.add("reddit", payload, "test")
    pub.flush_arrays()
    pub.add("reddit", poison, "test")
    pub.flush_arrays()  # the poison in a record of its own, amid good ones in the same batch
    for payload in good[20:]:
        pub.add("reddit", payload, "test")
    pub.close()
    with ns.worker():
        ns.drain()
    final, keys = stored_keys(ns)
    want = expected_keys(ns, good)
    assert final == len(want) and keys == want, ns.log_tail()
    client = connect(ns.store_url, ns.settings)
    try:
        dead = client.query("SELECT reason, payload FROM dead_letters").result_rows
        archived = client.query("SELECT count() FROM raw_events FINAL").result_rows[0][0]
    finally:
        client.close()
    assert len(dead) == 1, dead
    assert "ecursion" in dead[0][0] and dead[0][1] == poison.decode(), dead[0][0]
    assert archived == len(good) + 1


@pytest.fixture
def own_store(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A store of this test's own, so that it can be SIGSTOPped without stalling other tests."""
    from streams.embedded.credentials import read_users, with_credentials

    log_path = tmp_path / "own-store.log"
    log = open(log_path, "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "store", "--data-dir", str(tmp_path / "own")],
                            stdout=subprocess.PIPE, stderr=log, cwd=REPO)
    try:
        url = first_line(proc, "the store", log_path)
        users = read_users(tmp_path / "own")  # log in as users do (docs/store.md, Security)
        assert users is not None, "the store wrote no store-credentials.json"
        yield with_credentials(url, users.pipeline.name, users.pipeline.password), proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        stop_process(proc)
        log.close()


@pytest.mark.parametrize("wait_empty", ["true", "false"])
def test_sigterm_mid_batch_leaves_it_uncommitted_and_redelivered(
        namespace: Namespace, own_store: tuple[str, subprocess.Popen[bytes]], wait_empty: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while the store hangs. faust's own ``STREAM_WAIT_EMPTY`` decides the path:
    true (default) waits in ``Consumer.wait_empty`` for the batch before stopping agents;
    false cancels the agent at once, and ``take_events`` would ack the cancelled batch."""
    monkeypatch.setenv("STREAM_WAIT_EMPTY", wait_empty)
    url, store_proc = own_store
    ns = Namespace(namespace.settings.model_copy(update={"store_url": url}), namespace.broker_url, url,
                   namespace.log_dir)
    migrate(url, ns.settings)
    raw = ns.settings.topic(raw_topic("reddit"))
    warm = [comment(i) for i in range(5)]
    batch = [comment(i) for i in range(5, 305)]
    pub = Publisher(ns.settings.model_copy(update={"publish_batch": 10}), ns.broker_url)
    worker = ns.start_worker("worker-1")
    ns.workers.append(worker)
    try:
        for payload in warm:
            pub.add("reddit", payload, "test")
        pub.flush()
        ns.drain()  # the worker is up and owns the partitions
        os.kill(store_proc.pid, signal.SIGSTOP)  # every store call now hangs: the batch is in flight
        for payload in batch:
            pub.add("reddit", payload, "test")
        pub.flush()
        time.sleep(3.0)  # fetched and held by the normalizer, blocked on its archive write
        worker.send_signal(signal.SIGTERM)
        time.sleep(8.0)  # faust's shutdown (and its commit) runs meanwhile
        marks = high_watermarks(ns.broker_url, [raw])
        done = committed_offsets(ns.broker_url, ns.settings.app_id)
        lag = sum(hw - done.get(tp, 0) for tp, hw in marks.items())
        assert lag > 0, f"the stopped batch was committed: {done} vs {marks}\n{ns.log_tail()}"
        os.kill(store_proc.pid, signal.SIGCONT)
        wait_until(lambda: worker.poll() is not None, timeout_s=30)
        ns.workers.remove(worker)
        pub.close()
        with ns.worker():
            ns.drain()
        final, keys = stored_keys(ns)
        want = expected_keys(ns, warm + batch)
        assert final == len(want) and keys == want, ns.log_tail()
    finally:
        os.kill(store_proc.pid, signal.SIGCONT)
        for w in list(ns.workers):
            stop_process(w)


def test_sigterm_of_one_of_two_workers_mid_stream_loses_and_duplicates_nothing(namespace: Namespace) -> None:
    """The group rebalances while batches are held (faust's wait_empty on revocation)."""
    from streams.simulator.traffic import Simulator
    from tests.integration.test_recovery import expected_keys as simulated_keys

    ns = namespace
    sim = Simulator(load_clients(ns.settings.clients), seed=23, start_ms=1_790_000_000_000)
    events = list(sim.events(4000))
    want = simulated_keys(ns, events)
    pub = Publisher(ns.settings.model_copy(update={"publish_batch": 20}), ns.broker_url)
    first, second = ns.start_worker("worker-1"), ns.start_worker("worker-2")
    ns.workers.extend([first, second])
    try:
        for i, ev in enumerate(events):
            pub.add(ev.platform, orjson.dumps(ev.payload), ev.source, via_account=ev.via_account or "")
            if i % 400 == 399:
                pub.flush()
                time.sleep(0.3)
            if i == 2000:
                pub.flush()
                wait_until(lambda: stored_keys(ns)[0] > 0, timeout_s=90)
                first.send_signal(signal.SIGTERM)  # mid-stream: the survivor takes its partitions over
        pub.close()
        first.wait(60)
        ns.workers.remove(first)
        ns.drain(timeout_s=180)
        final, keys = stored_keys(ns)
    finally:
        for w in list(ns.workers):
            stop_process(w)
    assert final == len(want) and keys == want
