"""The pipeline's two cores in two processes store and detect what one process does.

The same payloads, with the same arrival times, go through one `rapport worker` (every agent,
group = the app id) and through a `--agents normalize` and a `--agents detect` worker (their
own groups); both runs are drained by the one :func:`streams.drain.wait_drained`, which has
to find each stage's progress in whichever group committed it (issue 11, lever 1).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from streams.chaos.check import diff, interaction_keys
from streams.clients import PLATFORMS, load_clients
from streams.contracts.groups import WorkerRole, consumer_group
from streams.contracts.topics import INTERACTIONS, raw_topic
from streams.drain import committed_offsets, lag, lags
from streams.embedded.broker import Broker
from streams.ingest.publisher import Publisher
from streams.simulator.traffic import Simulator
from streams.store.client import connect
from tests.integration.test_detect_recovery import START_MS, second_namespace, tables
from tests.support.interactions import arrival_payloads
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration


def _publish(ns: Namespace, payloads: list[tuple[str, bytes, str, str, int]]) -> None:
    pub = Publisher(ns.settings.model_copy(update={"publish_batch": 20}), ns.broker_url)
    for platform, body, source, via, received in payloads:
        pub.add(platform, body, source, received_at=received, via_account=via)
    pub.close()


def _keys(ns: Namespace) -> tuple[int, set[tuple[str, str, str, str]]]:
    client = connect(ns.store_url, ns.settings)
    try:
        return interaction_keys(client)
    finally:
        client.close()


def test_split_workers_store_and_detect_what_one_worker_does(namespace: Namespace, broker: Broker,
                                                             store_url: str, tmp_path: Path) -> None:
    events = list(Simulator(load_clients(namespace.settings.clients), seed=31, start_ms=START_MS).events(3000))
    payloads = arrival_payloads(events)  # the same arrival times in both runs

    one = namespace
    _publish(one, payloads)
    with one.worker():
        one.drain()
    want, want_rollup = tables(one)
    want_keys = _keys(one)

    split = second_namespace(broker, store_url, tmp_path)
    _publish(split, payloads)
    with ExitStack() as workers:
        workers.enter_context(split.worker(agents="normalize"))
        workers.enter_context(split.worker(agents="detect"))
        split.drain(timeout_s=180)
    got, got_rollup = tables(split)

    problems = diff(want, got)
    assert not problems, problems
    assert got_rollup == want_rollup
    assert _keys(split) == want_keys and want_keys[0] > 1000
    assert sum(len(r) for r in got.values()) > 500

    # Each role committed under its own group, the app id's group nothing: the drain above
    # read the stages' progress from the role groups.
    s = split.settings
    raw = [s.topic(raw_topic(p)) for p in PLATFORMS]
    inter = [s.topic(INTERACTIONS)]
    normalize, detect = (consumer_group(s.app_id, r) for r in (WorkerRole.normalize, WorkerRole.detect))
    assert committed_offsets(split.broker_url, s.app_id) == {}
    assert {t for t, _ in committed_offsets(split.broker_url, normalize)} <= set(raw)
    assert {t for t, _ in committed_offsets(split.broker_url, detect)} == set(inter)
    assert lag(split.broker_url, s.app_id, raw) == 0 and lag(split.broker_url, s.app_id, inter) == 0
    # A group that never consumed a topic counts every record of it as lag: detect's view of raw.
    by_group = lags(split.broker_url, [normalize, detect], raw)
    assert by_group[normalize] == 0 and by_group[detect] >= len(events) // 20
