"""Bounded state: idle threads and persons are evicted, and what wakes up is rebuilt from the store.

Drives the worker's detection engine (no faust) against the real store, batch by batch as
the sink does, with a horizon of one hour of event time (the traffic spans a day) so that many threads go idle and
many wake up again (the simulator answers up to a day later). The tables must still equal
the batch recomputation, and the in-memory state must hold far fewer threads than exist.
Run twice: with evicted thread ids remembered, and with none remembered (every thread not
in memory is then looked up in the store) and no settled conversation kept by persons who
stay (each is then read back from the store before their account's next batch).
"""

from __future__ import annotations

import random

import orjson
import pytest

from streams.chaos.check import diff, expected_rows, rollup_rows, rollup_truth, stored_rows
from streams.clients import load_clients
from streams.contracts.envelopes import Envelope
from streams.detect.account_state import AccountState
from streams.detect_io.engine import Detector
from streams.detect_io.queries import DetectStore
from streams.detect_io.sequential import SequentialSink
from streams.interaction import Change, Interaction
from streams.normalize.base import AccountIndex
from streams.normalize.records import RawRecord, normalize_records
from streams.simulator.traffic import Simulator
from streams.store.client import connect
from tests.support.interactions import change_row, interaction, interaction_row
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration
HOUR = 3_600_000
MINUTE = 60_000


@pytest.mark.timeout(600)  # a day of traffic, batch by batch, on a shared machine
@pytest.mark.parametrize(("max_evicted", "max_convs"), [(100_000, None), (0, 0)],
                         ids=["ids-remembered", "ids-forgotten-convs-folded"])
def test_evicted_threads_wake_up_exactly(namespace: Namespace, max_evicted: int, max_convs: int | None) -> None:
    ns = namespace
    clients = load_clients(ns.settings.clients)
    index = AccountIndex.build(clients)
    events = list(Simulator(clients, seed=41, start_ms=1_790_000_000_000, mean_gap_ms=20_000).events(4000))
    client = connect(ns.store_url, ns.settings)
    store = DetectStore(connect(ns.store_url, ns.settings))
    sink = SequentialSink(client, store)
    detector = Detector(clients, store, live_window_ms=HOUR, horizon_ms=HOUR, max_evicted=max_evicted,
                        max_person_convs=max_convs)
    clock = 1_800_000_000_000  # "now" for the live rule: long after the events

    evicted = restored = peak = 0
    try:
        for start in range(0, len(events), 100):
            records = [RawRecord("raw", 0, start + i, ev.platform, orjson.dumps(ev.payload),
                                 {"source": ev.source, "received_at": str(ev.event_ms + 5000),
                                  "via_account": ev.via_account or ""}, ev.event_ms)
                       for i, ev in enumerate(events[start:start + 100])]
            envelopes = list(normalize_records(records, index, clock).envelopes.values())
            clock += 1
            out = sink.apply(detector, envelopes, clock)
            restored += out.restored_threads
            peak = max(peak, detector.threads_in_memory())
            evicted += detector.evict(clock)
            sizes = detector.sizes()
            assert sizes["evicted_ids"] <= max_evicted * len(detector.accounts), sizes
        want = expected_rows(clients, client)
        got = stored_rows(client)
        problems = diff(want, got)
        assert not problems, problems
        rollup, truth = rollup_rows(client), rollup_truth(client)
        assert rollup == truth, str((sorted(rollup - truth), sorted(truth - rollup)))
        # A rebuild paged 50 rows at a time gives the state a whole-history rebuild gives, and
        # finds nothing to correct in tables that are right.
        paged = Detector(clients, store, live_window_ms=HOUR, horizon_ms=HOUR, rebuild_page=50)
        busiest = sorted(paged.tracked, key=lambda k: -sum(1 for t in want["threads"] if f"{t[0]}:{t[1]}" == k))
        for key in busiest[:2]:
            loaded = paged.load(key, clock)
            assert len(loaded.diff) == 0, (key, len(loaded.diff))
            c, account_id, _ = paged.tracked[key]
            whole = AccountState.rebuild(c, account_id, store.interactions(c.id, account_id),
                                         store.deletes(c.id, account_id), watermark_ms=loaded.account.state.watermark)
            assert loaded.account.state.snapshot() == whole.snapshot(), key
    finally:
        client.close()
        store.client.close()
    assert evicted > 100 and restored > 10, (evicted, restored)
    counters = [acc.state.counters for acc in detector.accounts.values()]
    persons_evicted = sum(c["evicted_persons"] for c in counters)
    persons_restored = sum(c["restored_persons"] for c in counters)
    assert persons_evicted > 10 and persons_restored > 0, (persons_evicted, persons_restored)
    folded = sum(c["folded_convs"] for c in counters)
    assert (folded > 0) == (max_convs is not None), folded  # the folded run did fold, the other never
    assert detector.threads_in_memory() < len(want["threads"]) / 2, (detector.threads_in_memory(), len(want["threads"]))


@pytest.mark.timeout(600)
def test_late_arrivals_past_the_horizon_match_the_recomputation(namespace: Namespace) -> None:
    """What `rapport chaos` does to a long run, in miniature: some payloads are lost with a
    broker and published again (the replay's drain) only after the rest, many horizons of
    event time later, and a worker restarts on the way. Statuses then arrive after their
    deletes were forgotten and into evicted threads: a late answer must withdraw the alert
    stored before the eviction, a late Mastodon parent must retract the provisional thread
    its evicted replies were filed under. The tables must equal the batch recomputation."""
    ns = namespace
    clients = load_clients(ns.settings.clients)
    index = AccountIndex.build(clients)
    events = list(Simulator(clients, seed=43, start_ms=1_790_000_000_000, mean_gap_ms=20_000).events(4000))
    late = set(random.Random(43).sample(range(len(events)), len(events) // 20))
    order = [i for i in range(len(events)) if i not in late] + sorted(late)
    client = connect(ns.store_url, ns.settings)
    store = DetectStore(connect(ns.store_url, ns.settings))
    sink = SequentialSink(client, store)
    clock = 1_800_000_000_000

    def worker() -> Detector:
        detector = Detector(clients, store, live_window_ms=HOUR, horizon_ms=HOUR)
        detector.own({0}, 1)
        return detector

    detector = worker()
    restored = 0
    try:
        for start in range(0, len(order), 100):
            if start == len(order) // 2:
                detector = worker()  # a restart half-way: accounts are rebuilt from the store
            records = [RawRecord("raw", 0, i, events[i].platform, orjson.dumps(events[i].payload),
                                 {"source": events[i].source, "received_at": str(events[i].event_ms + 5000),
                                  "via_account": events[i].via_account or ""}, events[i].event_ms)
                       for i in order[start:start + 100]]
            envelopes = list(normalize_records(records, index, clock).envelopes.values())
            clock += 1
            out = sink.apply(detector, envelopes, clock)
            restored += out.restored_threads
            detector.evict(clock)
        problems = diff(expected_rows(clients, client), stored_rows(client))
        assert not problems, problems
        rollup, truth = rollup_rows(client), rollup_truth(client)
        assert rollup == truth, str((sorted(rollup - truth), sorted(truth - rollup)))
    finally:
        client.close()
        store.client.close()
    assert restored > 10, restored  # the late payloads did wake evicted threads


def test_delete_of_a_reply_whose_parent_comes_after_an_eviction(namespace: Namespace) -> None:
    """The one response `rapport chaos` got wrong, in miniature, batch by batch against the
    store: a Facebook reply to a page post and its delete arrive before the post (the
    drain's envelope was split across two sink batches), an eviction passes whose horizon
    is past the delete but not past the thread, then the post comes. The reply becomes
    inbound only then, without arriving again: its delete must still be known, or it stays
    ``breached`` where the recomputation says ``cancelled``."""
    ns = namespace
    clients = load_clients(ns.settings.clients)
    client = connect(ns.store_url, ns.settings)
    store = DetectStore(connect(ns.store_url, ns.settings))
    sink = SequentialSink(client, store)
    t0, acct, post = 1_790_000_000_000, "700001", "700001_800"

    def msg(eid: str, kind: str, author: str, at: int, parent: str | None = None) -> Interaction:
        return interaction("facebook", eid, kind, author, t0 + at, client_id="globex", account_id=acct,
                           parent_id=parent, root_id=post if kind != "post" else eid)

    reply = msg("800_901", "reply", "2245902418690219", 10 * MINUTE, parent=post)
    later = [msg("800_902", "reply", "3109964137229848", 3 * HOUR, parent=post),  # keeps the thread
             msg("700001_801", "post", acct, 3 * HOUR + 30 * MINUTE)]  # moves the event time on
    gone = Change("facebook", reply.event_id, "delete", t0 + 20 * MINUTE, "", reply.author_id, "globex", acct,
                  "replay", "", 1)
    detector = Detector(clients, store, live_window_ms=HOUR, horizon_ms=HOUR)
    detector.own({0}, 1)
    clock = 1_800_000_000_000
    try:
        for msgs, chs in (([reply, *later], [gone]), ([msg(post, "post", acct, 0)], [])):
            envelope = Envelope([interaction_row(m) for m in msgs], [change_row(c) for c in chs])
            clock += 1
            sink.apply(detector, [envelope], clock)
            detector.evict(clock)
        book = detector.accounts[f"globex:{acct}"].state.book
        assert book.post("facebook", reply.event_id) is not None  # the thread stayed in memory
        problems = diff(expected_rows(clients, client), stored_rows(client))
        assert not problems, problems
        status = client.query(f"SELECT status FROM responses FINAL WHERE event_id = '{reply.event_id}'").result_rows
        assert status == [("cancelled",)]
    finally:
        client.close()
        store.client.close()
