"""A rebuilt account keeps the unattributed deletes of statuses that are not stored yet.

A Mastodon delete names only the status id and carries no account (``client_id = ''``), and
its status may arrive after it: `rapport replay --drain` publishes again the lines a
broker loss dropped, after the delete that survived. Live, the state remembers the delete
and cancels the status when it comes. `rapport chaos` found the rebuild after a restart
loading only the unattributed deletes of *stored* statuses: the status then arrived into
a state without its delete and stayed ``breached`` where the recomputation over the store
says ``cancelled``. The same happened when the rebuild ran in the very batch that brings
the status (the agent computes while the batch's insert is in flight).

Drives the worker's detection engine (no faust) against the real store, batch by batch as
the sink does, and compares the stored rows with the batch recomputation over what the
store holds.
"""

from __future__ import annotations

import itertools
from dataclasses import astuple, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.chaos.check import read_inputs, stored_rows
from streams.clients import Client, ClientsFile, TrackedAccount
from streams.contracts.envelopes import Envelope
from streams.contracts.tables import CHANGES, INTERACTIONS
from streams.detect.recompute import recompute
from streams.detect_io.engine import Batch, Detector
from streams.detect_io.queries import DetectStore
from streams.detect_io.tables import TABLES
from streams.interaction import Change, Interaction
from streams.store.client import connect
from streams.store.writer import TableWriter
from tests.support.interactions import change_row, interaction, interaction_row
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration

ACCOUNT = "900"
MIN = 60_000
DAY = 86_400_000
T0 = 1_790_000_000_000  # event time of the statuses
RECEIVED = T0 + 70 * DAY  # a Mastodon delete's time is when it was received: months later in a replay
CLOCK = T0 + 71 * DAY  # "now": the account is not live, its deadlines stand at its event time
_ids = itertools.count()


def tracked(client_id: str) -> ClientsFile:
    return ClientsFile(clients=(Client(id=client_id, sla_minutes=60,
                                       accounts=(TrackedAccount(platform="mastodon", account_id=ACCOUNT),)),))


def status(client_id: str, eid: str, at: int, author: str = "p1") -> Interaction:
    """A person's status mentioning the tracked account: an inbound message with a deadline."""
    return interaction("mastodon", eid, "mention", author, at, client_id=client_id, account_id=ACCOUNT,
                       author_handle=author, mentioned_ids=(ACCOUNT,))


def answer(client_id: str, eid: str, to: Interaction, at: int) -> Interaction:
    return interaction("mastodon", eid, "reply", ACCOUNT, at, client_id=client_id, account_id=ACCOUNT,
                       parent_id=to.event_id, parent_author_id=to.author_id)


def delete(eid: str, at: int) -> Change:
    """A Mastodon delete as the normalizer makes it: no account, the time it was received."""
    return Change("mastodon", eid, "delete", at, "", "", "", "", "stream", "", 1)


class Worker:
    """One worker's detection on the real store, fed batch by batch as the sink feeds it."""

    def __init__(self, ns: Namespace, clients: ClientsFile) -> None:
        self.clients = clients
        self.client = connect(ns.store_url, ns.settings)
        self.store = DetectStore(connect(ns.store_url, ns.settings))
        self.inter = TableWriter.for_spec(self.client, INTERACTIONS, 5000)
        self.changes = TableWriter.for_spec(self.client, CHANGES, 5000)
        self.writers = {spec.name: TableWriter.for_spec(self.client, spec.store_table, 5000) for spec in TABLES}
        self.clock = CLOCK
        self.restart()

    def restart(self) -> None:
        """A new process: empty state; the partition is assigned, so the account loads eagerly."""
        self.detector = Detector(self.clients, self.store, live_window_ms=3_600_000, horizon_ms=7 * DAY)
        self.detector.own({0}, 1)

    def feed(self, msgs: list[Interaction], changes: list[Change], *, read_before_insert: bool) -> None:
        """One batch. The agent reads (and rebuilds) while the batch's insert is in flight, so a
        rebuild may or may not see the batch's own rows: ``read_before_insert`` picks."""
        self.clock += 1
        batch = Batch.of([Envelope([interaction_row(m) for m in msgs], [change_row(c) for c in changes])])
        if read_before_insert:
            prepared = self.detector.prepare(batch, self.clock)
        self.inter.write([interaction_row(m) for m in msgs])
        self.changes.write([change_row(c) for c in changes])
        if not read_before_insert:
            prepared = self.detector.prepare(batch, self.clock)
        self._write(self.detector.commit(prepared, batch, self.clock))

    def evict(self) -> int:
        """The timer's eviction pass (idle threads, and the deletes of statuses not known)."""
        return self.detector.evict(self.clock)

    def sweep(self) -> None:
        """The timer between batches: loads what is pending, passes deadlines."""
        self.clock += 1
        detector = self.detector
        self._write(detector.commit(detector.prepare(None, self.clock), None, self.clock))

    def _write(self, out: Any) -> None:
        for table, rows in out.collector.store_rows(out.version).items():
            self.writers[table].write(rows)

    def mismatch(self, client_id: str) -> str:
        """The stored rows of ``client_id`` against the recomputation over every stored input
        (as `rapport chaos` checks: all changes without an account count)."""
        by_key, changes = read_inputs(self.client)
        msgs = by_key[f"{client_id}:{ACCOUNT}"]
        mine = [c for c in changes if c.client_id in ("", client_id)]
        (client,) = self.clients.clients
        want = recompute(client, ACCOUNT, msgs, mine, max(m.created_at for m in msgs))
        stored = stored_rows(self.client, f"client_id = '{client_id}'")
        problems = []
        for spec, rows in zip(TABLES, (want.threads, want.conversations, want.connections, want.responses,
                                       want.alerts), strict=True):
            expected = {astuple(r) for r in rows}  # type: ignore[call-overload]
            got = stored[spec.name]
            if expected != got:
                problems.append(f"{spec.name}: missing {sorted(expected - got)}, unexpected {sorted(got - expected)}")
        return "\n".join(problems)

    def close(self) -> None:
        self.client.close()
        self.store.client.close()


def response_status(worker: Worker, client_id: str, eid: str) -> str:
    rows = worker.store.rows(f"SELECT status FROM responses FINAL WHERE client_id = '{client_id}' "
                             f"AND event_id = '{eid}'")
    return str(rows[0][0]) if rows else "none"


@pytest.mark.parametrize("when", ["rebuilt_by_a_sweep", "rebuilt_in_the_status_batch_before_its_insert",
                                  "rebuilt_in_the_status_batch_after_its_insert"])
def test_a_delete_before_its_status_survives_a_restart(namespace: Namespace, when: str) -> None:
    client_id = f"rb{next(_ids)}"
    worker = Worker(namespace, tracked(client_id))
    try:
        s = status(client_id, "1001", T0)
        worker.feed([], [delete("1001", RECEIVED)], read_before_insert=False)  # applied, stored
        worker.restart()
        if when == "rebuilt_by_a_sweep":
            worker.sweep()
        later = status(client_id, "1002", T0 + DAY, author="p2")  # moves the watermark past the deadline
        worker.feed([s, later], [], read_before_insert=when != "rebuilt_in_the_status_batch_after_its_insert")
        # The status's deadline passed long before the delete came: its alert is cancelled.
        assert response_status(worker, client_id, "1001") == "cancelled"
        assert not worker.mismatch(client_id), worker.mismatch(client_id)
    finally:
        worker.close()


@pytest.mark.parametrize("attributed", [False, True], ids=["unattributed", "attributed"])
@pytest.mark.parametrize("how", ["forgotten_by_eviction", "rebuilt_by_a_sweep",
                                 "rebuilt_in_the_status_batch_before_its_insert",
                                 "rebuilt_in_the_status_batch_after_its_insert"])
def test_a_status_arriving_a_horizon_after_its_delete_is_cancelled(namespace: Namespace, how: str,
                                                                   attributed: bool) -> None:
    """A delete older than the horizon is dropped from memory (eviction) or not loaded (a
    rebuild loads unattributed deletes of unstored statuses one horizon back): a status
    arriving after that must still find it. `rapport chaos` with a million events (23 days
    of event time, a 7-day horizon) found such statuses ``breached`` where the
    recomputation says ``cancelled``: lost with a broker, published again by the replay's
    drain at the end, long after the delete that survived (a Bluesky delete carries the
    event time, and no account)."""
    client_id = f"rb{next(_ids)}"
    worker = Worker(namespace, tracked(client_id))
    try:
        s = status(client_id, "2001", T0)
        gone = delete("2001", T0 + 10 * MIN)
        if attributed:
            gone = replace(gone, client_id=client_id, account_id=ACCOUNT)
        worker.feed([status(client_id, "2000", T0, author="p3")], [gone], read_before_insert=False)
        worker.feed([status(client_id, "2002", T0 + 8 * DAY, author="p2")], [], read_before_insert=False)
        if how == "forgotten_by_eviction":
            assert worker.evict() >= 1  # the first status's thread is idle past the horizon
        else:
            worker.restart()
            if how == "rebuilt_by_a_sweep":
                worker.sweep()
        # Published again, long after its delete.
        worker.feed([s], [], read_before_insert=how == "rebuilt_in_the_status_batch_before_its_insert")
        assert response_status(worker, client_id, "2001") == "cancelled"
        assert not worker.mismatch(client_id), worker.mismatch(client_id)
    finally:
        worker.close()


def test_a_delete_of_an_evicted_breached_status_withdraws_its_alert_when_its_thread_wakes(
        namespace: Namespace) -> None:
    """The status's alert opened, its thread was evicted (the alert with it), its delete came
    while it was evicted, and a later reply woke the thread: restored from the store with
    its delete, the status is ``cancelled``, and the alert stored before the eviction must
    be withdrawn (`rapport chaos`, 100 k events with a 4-hour horizon, found it ``breached``)."""
    client_id = f"rb{next(_ids)}"
    worker = Worker(namespace, tracked(client_id))
    try:
        s = status(client_id, "3001", T0)
        worker.feed([s], [], read_before_insert=False)
        worker.feed([status(client_id, "3002", T0 + 8 * DAY, author="p2")], [], read_before_insert=False)
        assert worker.store.rows(f"SELECT status FROM alerts FINAL WHERE client_id = '{client_id}' "
                                 "AND event_id = '3001'") == [["breached"]]
        assert worker.evict() >= 1
        worker.feed([], [delete("3001", T0 + 10 * MIN)], read_before_insert=False)  # before the deadline
        reply = interaction("mastodon", "3003", "reply", "p1", T0 + 8 * DAY + MIN, client_id=client_id,
                            account_id=ACCOUNT, parent_id="3001", parent_author_id="p1")
        worker.feed([reply], [], read_before_insert=False)
        assert response_status(worker, client_id, "3001") == "cancelled"
        assert not worker.mismatch(client_id), worker.mismatch(client_id)
    finally:
        worker.close()


@pytest.mark.parametrize("attributed", [False, True], ids=["unattributed", "attributed"])
def test_a_delete_of_a_status_in_an_evicted_thread_cancels_it(namespace: Namespace, attributed: bool) -> None:
    """The status breached and its thread was evicted before its delete came (a delete
    published again late, or a status published again, evicted at once since its event
    time is long past): the delete wakes the thread, so the stored response becomes
    ``cancelled`` and the alert is withdrawn (`rapport chaos` found it ``breached``)."""
    client_id = f"rb{next(_ids)}"
    worker = Worker(namespace, tracked(client_id))
    try:
        worker.feed([status(client_id, "4001", T0)], [], read_before_insert=False)
        worker.feed([status(client_id, "4002", T0 + 8 * DAY, author="p2")], [], read_before_insert=False)
        assert worker.evict() >= 1
        gone = delete("4001", T0 + 10 * MIN)
        if attributed:
            gone = replace(gone, client_id=client_id, account_id=ACCOUNT)
        worker.feed([], [gone], read_before_insert=True)
        assert response_status(worker, client_id, "4001") == "cancelled"
        assert not worker.mismatch(client_id), worker.mismatch(client_id)
    finally:
        worker.close()


Step = tuple[str, int, int, str]
"""``("status", n, minute, author)``, ``("answer", n, minutes after, "")`` or ``("delete", n, at, "")``."""


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[list[Step], bool, bool]]:
    """Statuses (some answered, some deleted before or after their deadline), in a random
    arrival order cut into batches; per batch: a restart before it, and whether its reads
    run before its insert."""
    steps: list[Step] = [("status", 9, 24 * 60, "p2")]  # a day later: deadlines before it have passed
    for n in range(draw(st.integers(1, 4))):
        steps.append(("status", n, draw(st.integers(0, 120)), draw(st.sampled_from(["p1", "p2"]))))
        if draw(st.booleans()):
            steps.append(("answer", n, draw(st.integers(0, 180)), ""))
        if draw(st.booleans()):
            steps.append(("delete", n, draw(st.sampled_from([10 * MIN, RECEIVED])), ""))
    batches: list[tuple[list[Step], bool, bool]] = []
    for step in draw(st.permutations(steps)):
        if not batches or draw(st.booleans()):
            batches.append(([], draw(st.booleans()), draw(st.booleans())))
        batches[-1][0].append(step)
    return batches


def materialize(client_id: str, steps: list[Step]) -> dict[tuple[str, int], Interaction | Change]:
    """The interactions and deletes of ``steps``, ids unique to ``client_id`` (the database is shared)."""
    out: dict[tuple[str, int], Interaction | Change] = {}
    statuses = {n: status(client_id, f"{client_id}-s{n}", T0 + minute * MIN, author)
                for kind, n, minute, author in steps if kind == "status"}
    for kind, n, value, _ in steps:
        s = statuses[n]
        if kind == "status":
            out[(kind, n)] = s
        elif kind == "answer":
            out[(kind, n)] = answer(client_id, f"{client_id}-a{n}", s, s.created_at + value * MIN)
        else:
            out[(kind, n)] = delete(s.event_id, value if value == RECEIVED else s.created_at + value)
    return out


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batches=histories())
def test_any_arrival_order_with_restarts_matches_the_recomputation(
        namespace: Namespace, batches: list[tuple[list[Step], bool, bool]]) -> None:
    client_id = f"rb{next(_ids)}"
    rows = materialize(client_id, [step for steps, _, _ in batches for step in steps])
    worker = Worker(namespace, tracked(client_id))
    try:
        for steps, restart, read_before_insert in batches:
            if restart:
                worker.restart()
            items = [rows[(kind, n)] for kind, n, _, _ in steps]
            worker.feed([i for i in items if isinstance(i, Interaction)],
                        [i for i in items if isinstance(i, Change)], read_before_insert=read_before_insert)
        problems = worker.mismatch(client_id)
        assert not problems, problems
    finally:
        worker.close()
