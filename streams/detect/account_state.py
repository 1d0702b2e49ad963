"""All detection state of one tracked account, behind one ``apply`` and one ``sweep``.

This is the pure core of the detect agent: it receives batches of interactions and
changes for one ``client_id:account_id`` partition (in any order, with redeliveries) and
returns the rows that changed. Every row is a function of the set of interactions and
changes seen plus the sweep watermark, never of their order, so:

- replaying history, restarting (:meth:`AccountState.rebuild` from the stored
  interactions) and live processing all end with the same rows;
- the reference recomputation in :mod:`streams.detect.recompute` must agree with it, which
  the property tests check for every arrival order.

Work is split between the modules: :mod:`threads` files posts into threads,
:mod:`addressing` decides who speaks to whom, :mod:`conversations` keeps the per
(thread, person) exchanges (stored on their thread by :mod:`thread_pairs`) and per person
roll-ups, :mod:`responses` the inbound messages,
their deadlines and alerts. This module only routes facts between them and turns state
into rows.

Person handles come from the person's inbound messages: the handle of the latest one
(by event time, then event id) that carries a handle.

Memory is bounded by the state horizon: idle threads are evicted (:meth:`evict_idle`), and
with them what :mod:`persons` may forget of the persons (whole persons no post in memory
names, settled conversations of persons who keep coming back). A batch that names a person
memory forgot must first restore them (:meth:`persons_to_restore`, :meth:`restore_persons`)
from what the store holds: their conversation rows and the inbound message that gave their
handle.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from streams.clients import Client
from streams.detect.addressing import (
    addressees,
    is_inbound,
    parent_of,
    payload_addressing,
    persons_addressed_by_account,
)
from streams.detect.business_time import BusinessCalendar
from streams.detect.conversations import ConversationSummary, Pair, connection
from streams.detect.identity import canonical_id, is_person
from streams.detect.persons import PersonBook, PersonKey, PersonState, StoredPerson, persons_named
from streams.detect.responses import (
    ALERT_WITHDRAWN,
    OPEN,
    Inbound,
    ResponseBook,
    ResponseKey,
)
from streams.detect.rows import (
    AlertRow,
    ConnectionRow,
    ConversationRow,
    ResponseRow,
    ThreadRow,
    Updates,
)
from streams.detect.thread_pairs import pair_in, pairs_of, put_pair
from streams.detect.threads import Merge, Post, Thread, ThreadBook, ThreadId
from streams.interaction import SIGNAL_KINDS, Change, Interaction

PairKey = tuple[ThreadId, str]
"""``((platform, root_id), person_id)``."""


@dataclass(slots=True)
class _Dirty:
    """Keys whose rows must be (re-)emitted at the end of an apply or sweep."""

    threads: set[ThreadId] = field(default_factory=set)
    retracted_threads: set[ThreadId] = field(default_factory=set)
    pairs: set[PairKey] = field(default_factory=set)
    convs: set[PairKey] = field(default_factory=set)
    retracted_convs: set[PairKey] = field(default_factory=set)
    persons: set[PersonKey] = field(default_factory=set)
    responses: set[ResponseKey] = field(default_factory=set)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


class AccountState:
    """Threads, conversations, connections, responses and alerts of one tracked account."""

    def __init__(self, client: Client, account_id: str, calendar: BusinessCalendar | None = None,
                 max_evicted: int = 100_000, max_person_convs: int | None = None) -> None:
        self.client_id = client.id
        self.account_id = account_id
        self.sla_minutes = client.sla_minutes
        self.calendar = calendar or BusinessCalendar.from_client(client)
        self.book = ThreadBook(account_id, max_evicted=max_evicted)
        self.responses = ResponseBook(self.calendar, client.sla_minutes)
        self.persons = PersonBook(max_person_convs)
        self._account_named: dict[str, tuple[str, ...]] = {}  # platform -> (account,)
        self._alerts: dict[str, dict[str, tuple[str, int | None]]] = {}
        """Platform -> event id -> the alert state last emitted (keyed by the event id the
        post already holds rather than a ``(platform, event_id)`` tuple per alert)."""
        self.counters: dict[str, int] = {
            "messages": 0,
            "signals": 0,
            "foreign": 0,
            "duplicates": 0,
            "deletes": 0,
            "edits": 0,
            "evicted": 0,
            "evicted_persons": 0,
            "restored_persons": 0,
            "folded_convs": 0,
        }

    @classmethod
    def rebuild(
        cls,
        client: Client,
        account_id: str,
        interactions: Iterable[Interaction],
        changes: Iterable[Change] = (),
        watermark_ms: int | None = None,
        calendar: BusinessCalendar | None = None,
        max_evicted: int = 100_000,
    ) -> AccountState:
        """The state incremental processing would have: how a restarted worker recovers.

        Rows are not returned; with ``watermark_ms`` the deadlines up to it count as swept
        (their alerts as already emitted), so a following :meth:`sweep` only reports new ones.
        """
        state = cls(client, account_id, calendar, max_evicted=max_evicted)
        state.apply(sorted(interactions, key=lambda m: (m.created_at, m.event_id)), changes)
        if watermark_ms is not None:
            state.sweep(watermark_ms)
        return state

    @property
    def watermark(self) -> int:
        return self.responses.watermark

    # -- input ------------------------------------------------------------------------

    def apply(self, interactions: Iterable[Interaction], changes: Iterable[Change] = ()) -> Updates:
        """Take a batch of interactions and changes; return every row it changed."""
        dirty = _Dirty()
        for change in changes:
            self._change(change, dirty)
        for msg in interactions:
            self._add(msg, dirty)
        return self._flush(dirty)

    def sweep(self, watermark_ms: int) -> Updates:
        """Pass deadlines up to ``watermark_ms`` (the clock live, event time in a replay).

        Returns the responses that became ``breached`` and their newly opened alerts.
        """
        dirty = _Dirty()
        for rec in self.responses.sweep(watermark_ms):
            dirty.responses.add(rec.key)
        return self._flush(dirty)

    def _change(self, change: Change, dirty: _Dirty) -> None:
        if change.change != "delete":
            self.counters["edits"] += 1  # edits change text only, never a metric
            return
        self.counters["deletes"] += 1
        rec = self.responses.delete(change.platform, change.event_id, change.changed_at)
        if rec is not None:
            dirty.responses.add(rec.key)

    def _add(self, msg: Interaction, dirty: _Dirty) -> None:
        if msg.client_id != self.client_id or msg.account_id != self.account_id:
            self.counters["foreign"] += 1
            return
        if msg.kind in SIGNAL_KINDS:
            self.counters["signals"] += 1  # vanity signals are counted elsewhere
            return
        said = payload_addressing(msg)
        added = self.book.add(msg, self._shared_named(msg.platform, said.named), said.parent_author)
        if added is None:
            self.counters["duplicates"] += 1
            return
        self.counters["messages"] += 1
        dirty.threads.update(added.changed)
        dirty.retracted_threads.update(added.retracted)
        for merge in added.merged:
            self._merge(merge, dirty)
        self._register(added.post, dirty)
        for child in added.adopted:  # their parent's author is known now
            self._register(child, dirty)

    def _shared_named(self, platform: str, named: tuple[str, ...]) -> tuple[str, ...]:
        """``named``, as one tuple shared by every post when it names the account alone.

        That is what most inbound posts name (a mention of the brand); sharing it saves a
        tuple per post (see bench/README.md, lever 4).
        """
        if len(named) != 1 or named[0] != self.book.account(platform):
            return named
        shared = self._account_named.get(platform)
        if shared is None:
            shared = self._account_named[platform] = named
        return shared

    def _merge(self, merge: Merge, dirty: _Dirty) -> None:
        """A provisional thread was folded into a larger one: move its exchanges along."""
        src, dst = merge.src, merge.dst
        if merge.complete:
            # Every post moved: hand each (thread, person) exchange over, smaller into larger.
            for pair in pairs_of(src):
                dirty.pairs.add((src.tid, pair.person))
                dirty.pairs.add((dst.tid, pair.person))
                here = pair_in(dst, pair.person, create=False)
                if here is None:
                    put_pair(dst, pair)
                    continue
                big, small = (pair, here) if len(pair) > len(here) else (here, pair)
                put_pair(dst, big)
                for turn in small.outbound:
                    self._answered_by(dst.platform, big, cast(Post, turn), dirty)
                for turn in small.inbound:
                    self._asked(dst.platform, big, cast(Post, turn), dirty)
            src.ext = None
            return
        # Some posts stayed behind (roots named inconsistently): redo both threads.
        persons: set[str] = set()
        for thread in (src, dst):
            persons.update(p.person for p in pairs_of(thread))
            thread.ext = None
            for post in thread.posts:
                self._register(post, dirty)
            persons.update(p.person for p in pairs_of(thread))
        dirty.pairs.update((t.tid, person) for t in (src, dst) for person in persons)

    def _register(self, post: Post, dirty: _Dirty) -> None:
        """Record whom ``post`` addresses (idempotent: called again when more is known)."""
        thread = post.thread
        platform, tid = thread.platform, thread.tid
        parent_author = None
        if post.parent_author is None and post.parent is not None:
            parent = self.book.post(platform, post.parent)
            parent_author = parent.author if parent is not None else None
        addressed = addressees(post.author, post.named, post.parent_author, parent_author)
        if not addressed:
            return
        account = self.book.account(platform)
        for person in persons_addressed_by_account(post.author, addressed, account):
            pair = pair_in(thread, person, create=True)
            assert pair is not None
            if self._answered_by(platform, pair, post, dirty):
                dirty.pairs.add((tid, person))
        if is_inbound(post.author, addressed, account):
            pair = pair_in(thread, post.author, create=True)
            assert pair is not None
            if self._asked(platform, pair, post, dirty):
                dirty.pairs.add((tid, post.author))
                self._note_handle(platform, post, dirty)

    def _answered_by(self, platform: str, pair: Pair, post: Post, dirty: _Dirty) -> bool:
        """Add an account turn; it becomes the first answer of the person's messages it answers."""
        answers = pair.add_outbound(post)
        if answers is None:
            return False
        for turn in answers:
            rec = self.responses.get(platform, turn.id)
            if rec is not None and rec.answered_at != post.at:
                rec.answered_at = post.at
                dirty.responses.add(rec.key)
        return True

    def _asked(self, platform: str, pair: Pair, post: Post, dirty: _Dirty) -> bool:
        """Add a person's turn addressing the account: an inbound message with a deadline."""
        if not pair.add_inbound(post):
            return False
        known = self.responses.get(platform, post.id) is not None
        rec = self.responses.add(post)
        answered = pair.first_answer(post.at)
        if not known or rec.answered_at != answered:
            rec.answered_at = answered
            dirty.responses.add(rec.key)
        return True

    def _note_handle(self, platform: str, post: Post, dirty: _Dirty) -> None:
        pkey = (platform, post.author)
        person = self.persons.setdefault(pkey)
        if not post.handle or (post.at, post.id) <= person.handle_key:
            return
        person.handle_key = (post.at, post.id)
        if post.handle != person.handle:
            person.handle = post.handle
            dirty.persons.add(pkey)
            dirty.convs.update((tid, post.author) for tid in person.convs)

    # -- output -----------------------------------------------------------------------

    def _flush(self, dirty: _Dirty) -> Updates:
        for tid, person in dirty.pairs:
            self._refresh_pair(tid, person, dirty)
        threads = [self._thread_row(tid) for tid in sorted(dirty.threads | dirty.retracted_threads)]
        convs: list[ConversationRow] = []
        for tid, person in sorted(dirty.convs | dirty.retracted_convs):
            state = self.persons.get((tid[0], person))
            summary = state.convs.get(tid) if state is not None else None
            if state is not None and summary is not None:
                convs.append(self._conversation_row(tid, person, state, summary))
            elif (tid, person) in dirty.retracted_convs:
                convs.append(ConversationRow.retraction(self.client_id, self.account_id, tid, person))
        connections = []
        for pkey in sorted(dirty.persons):
            row = self._connection_row(pkey)
            if row is not None:
                connections.append(row)
        responses: list[ResponseRow] = []
        alerts: list[AlertRow] = []
        for key in sorted(dirty.responses):
            rec = self.responses.get(*key)
            if rec is None:
                continue
            responses.append(self._response_row(rec))
            alert = self._alert_change(rec)
            if alert is not None:
                alerts.append(alert)
        return Updates(tuple(threads), tuple(convs), tuple(connections), tuple(responses), tuple(alerts))

    def _refresh_pair(self, tid: ThreadId, person: str, dirty: _Dirty) -> None:
        """Bring the conversation summary of one (thread, person) pair up to date."""
        thread = self.book.thread(tid)
        pair = pair_in(thread, person, create=False) if thread is not None else None
        pkey = (tid[0], person)
        state = self.persons.get(pkey)
        summary = pair.summary() if pair is not None else None
        if summary is not None:
            if state is None:
                state = self.persons.setdefault(pkey)
            if state.convs.get(tid) != summary:
                state.convs[tid] = summary
                dirty.convs.add((tid, person))
                dirty.persons.add(pkey)
        elif state is not None and tid in state.convs:
            del state.convs[tid]
            dirty.retracted_convs.add((tid, person))
            dirty.persons.add(pkey)

    def _thread_row(self, tid: ThreadId) -> ThreadRow:
        thread = self.book.thread(tid)
        if thread is None:  # folded into a larger thread
            return ThreadRow.retraction(self.client_id, self.account_id, tid)
        s = thread.stats()
        return ThreadRow(
            self.client_id,
            self.account_id,
            s.platform,
            s.root_id,
            s.posts,
            s.depth,
            s.participants,
            s.account_posts,
            s.first_at,
            s.last_at,
        )

    def _conversation_row(
        self, tid: ThreadId, person: str, state: PersonState, summary: ConversationSummary
    ) -> ConversationRow:
        return ConversationRow(
            self.client_id,
            self.account_id,
            tid[0],
            tid[1],
            person,
            state.handle,
            summary.turns,
            summary.opened_by,
            summary.started_at,
            summary.last_at,
        )

    def _connection_row(self, pkey: PersonKey) -> ConnectionRow | None:
        state = self.persons.get(pkey)
        if state is None:
            return None
        conn = connection(state.convs.values(), state.folded)
        if conn is None:
            return None
        return ConnectionRow(
            self.client_id,
            self.account_id,
            pkey[0],
            pkey[1],
            state.handle,
            conn.conversations,
            conn.turns,
            conn.first_at,
            conn.last_at,
            conn.returning,
        )

    def _response_row(self, rec: Inbound) -> ResponseRow:
        answered, msg = rec.answered_at, rec.msg
        return ResponseRow(
            self.client_id,
            self.account_id,
            msg.platform,
            msg.id,
            msg.author,
            msg.at,
            rec.due,
            answered,
            None if answered is None else (answered - msg.at) / 1000,
            None if answered is None else self.calendar.business_seconds_between(msg.at, answered),
            self.responses.status(rec),
        )

    def _alert_row(self, rec: Inbound, status: str, resolved_at: int | None) -> AlertRow:
        msg = rec.msg
        who = f"@{msg.handle}" if msg.handle else msg.author
        text = (
            f"{who} got no first response within {self.sla_minutes} business minutes "
            f"({msg.platform} {msg.id}, received {_iso(msg.at)}, due {_iso(rec.due)})"
        )
        return AlertRow(
            self.client_id,
            self.account_id,
            msg.platform,
            msg.id,
            rec.due,
            rec.due,
            resolved_at,
            status,
            text,
        )

    def _alert_change(self, rec: Inbound) -> AlertRow | None:
        """The alert row to emit for ``rec``, if its alert changed since last emitted."""
        state = self.responses.alert(rec)
        emitted = self._alerts.setdefault(rec.msg.platform, {})
        previous = emitted.get(rec.msg.id)
        if state == previous:
            return None
        if state is None:
            del emitted[rec.msg.id]
            return self._alert_row(rec, ALERT_WITHDRAWN, None)
        emitted[rec.msg.id] = state
        return self._alert_row(rec, *state)

    # -- whole state ------------------------------------------------------------------

    def snapshot(self) -> Updates:
        """Every current row (retracted and withdrawn rows are not state, so not here)."""
        tids = sorted(t.tid for t in self.book.threads())
        threads = tuple(self._thread_row(tid) for tid in tids)
        convs = []
        connections = []
        for pkey, state in self.persons.sorted_items():
            for tid in sorted(state.convs):
                convs.append(self._conversation_row(tid, pkey[1], state, state.convs[tid]))
            row = self._connection_row(pkey)
            if row is not None:
                connections.append(row)
        responses = []
        alerts = []
        for rec in sorted(self.responses.records(), key=lambda r: r.key):
            responses.append(self._response_row(rec))
            state_ = self.responses.alert(rec)
            if state_ is not None:
                alerts.append(self._alert_row(rec, *state_))
        convs.sort(key=lambda r: r.key)
        return Updates(threads, tuple(convs), tuple(connections), tuple(responses), tuple(alerts))

    # -- memory -----------------------------------------------------------------------

    def needs_restore(self, interactions: Iterable[Interaction]) -> set[ThreadId]:
        """Evicted threads this batch would wake up: load their stored rows into the batch."""
        wanted: set[ThreadId] = set()
        for msg in self._own(interactions):
            wanted.update(self.book.needs_restore(msg))
        return wanted

    def evict_idle(self, now_ms: int, horizon_ms: int) -> list[ThreadId]:
        """Forget threads idle since before ``now_ms - horizon_ms`` (event time).

        Threads with a response still ``open`` (deadline ahead) are kept. Connections keep
        the evicted threads' conversation summaries, so they stay exact. A batch that
        wakes an evicted thread (:meth:`needs_restore`) must carry that thread's stored
        interactions and changes too; re-applying them restores the thread exactly
        (adding is idempotent and order-independent).
        """
        keep = {cast(Post, rec.msg).tid for rec in self.responses.records() if self.responses.status(rec) == OPEN}

        def drop(thread: Thread) -> None:
            ids = [turn.id for pair in pairs_of(thread) for turn in pair.inbound]
            self.responses.forget(thread.platform, ids)
            emitted = self._alerts.get(thread.platform, {})
            for event_id in ids:
                emitted.pop(event_id, None)

        evicted = self.book.evict_idle(now_ms, horizon_ms, keep=keep.__contains__, on_evict=drop)
        # After the threads went: a delete of a post still in memory stays (it may become
        # inbound when its parent arrives, see ResponseBook.forget_deletes); one of an evicted
        # post comes back with its thread (Detector._restore reads the thread's deletes).
        book = self.book
        self.responses.forget_deletes(now_ms - horizon_ms,
                                      in_memory=lambda platform, event_id: book.post(platform, event_id) is not None)
        self.counters["evicted"] += len(evicted)
        if evicted:
            self._evict_persons(now_ms - horizon_ms)
        return evicted

    def _evict_persons(self, cutoff: int) -> None:
        """Let :class:`PersonBook` forget what no post in memory needs (see :meth:`PersonBook.evict`)."""
        named: set[PersonKey] = set()
        in_memory: set[ThreadId] = set()
        for thread in self.book.threads():
            platform = thread.platform
            in_memory.add(thread.tid)
            for post in thread.posts:
                named.add((platform, post.author))
                named.update((platform, p) for p in post.named)
                if post.parent_author is not None:
                    named.add((platform, post.parent_author))
        gone, folded = self.persons.evict(named, in_memory, cutoff)
        self.counters["evicted_persons"] += gone
        self.counters["folded_convs"] += folded

    def conversations_in_memory(self) -> int:
        """Conversation summaries the persons in memory hold (bounded by :meth:`PersonBook.fold`)."""
        return self.persons.conversations()

    def partial_persons(self) -> int:
        """Persons in memory whose settled conversations were folded (see :meth:`PersonBook.fold`)."""
        return len(self.persons.partial)

    def persons_in_memory(self) -> int:
        return len(self.persons)

    def _own(self, interactions: Iterable[Interaction]) -> Iterator[Interaction]:
        """The messages this account's detection applies: not signals, not another account's."""
        return (m for m in interactions if m.kind not in SIGNAL_KINDS and m.account_id == self.account_id)

    def _persons_in(self, interactions: Iterable[Interaction]) -> Iterator[PersonKey]:
        """The persons (not the account) these messages name, a parent in memory's author included."""
        for msg in self._own(interactions):
            keys = list(persons_named(msg))
            parent_id = parent_of(msg)
            parent = self.book.post(msg.platform, parent_id) if parent_id else None
            if parent is not None:
                keys.append((msg.platform, parent.author))
            account = self.book.account(msg.platform)
            yield from (k for k in keys if is_person(k[1]) and k[1] != account)

    def persons_to_restore(self, interactions: Iterable[Interaction],
                           woken: Iterable[Interaction] = ()) -> set[PersonKey]:
        """Persons the store must give back before these messages are applied.

        ``woken`` are the messages of the threads restored with them (a parent's author
        comes from there). Named persons memory forgot come back whole; a partial person
        (:meth:`PersonBook.fold`) comes back when a woken thread names them or one of these
        messages brings them a new handle, the two ways a folded conversation can change.
        Empty until some person was forgotten.
        """
        if not self.persons.evicted:
            return set()
        msgs = list(interactions)
        woke = list(self._persons_in(woken))
        handles = [((m.platform, canonical_id(m.platform, m.author_id)), m.author_handle)
                   for m in self._own(msgs) if m.author_handle]
        return self.persons.to_restore([*self._persons_in(msgs), *woke], woke, handles)

    def deletes_to_look_up(self, interactions: Iterable[Interaction]) -> dict[str, list[str]]:
        """Event ids, per platform, of new statuses whose delete memory may no longer hold.

        Deletes of statuses not in memory are forgotten one horizon back
        (:meth:`evict_idle`), and a rebuild loads unattributed ones only that far back; a
        status that arrives later still (published again from the archive long after its
        delete) must find its delete in the store, or it stays ``breached`` where it is
        ``cancelled``. Only statuses older than what memory is sure of are named (usually
        none), so this costs a store read only for such late arrivals.
        """
        out: dict[str, list[str]] = {}
        for msg in self._own(interactions):
            if (not self.responses.may_miss_delete(msg.created_at)
                    or self.book.post(msg.platform, msg.event_id) is not None):
                continue
            out.setdefault(msg.platform, []).append(msg.event_id)
        return out

    def restore_alerts(self, stored: Mapping[ResponseKey, tuple[str, int | None]]) -> None:
        """Put back the alerts the store holds for a restored thread's messages (eviction
        dropped them): a late change that withdraws one (a delete or an answer before its
        deadline) then emits ``withdrawn`` instead of leaving it ``breached``."""
        for (platform, event_id), state in stored.items():
            self._alerts.setdefault(platform, {}).setdefault(event_id, state)

    def restore_persons(self, stored: Iterable[StoredPerson]) -> None:
        """Put forgotten persons back as the store has them (before the batch that names them)."""
        self.counters["restored_persons"] += self.persons.restore(stored)
