"""One worker's detection: per-account states, fed by batches and sweeps (no faust).

The state of a tracked account is a function of what the store holds, because the sink
acks a batch only after its interactions *and* the rows detection derived from them are
written. So an account's state is never restored from Kafka: it is rebuilt from
``interactions FINAL`` and ``changes FINAL`` the first time the account is needed after a
start or a rebalance (:meth:`Detector.prepare`). The rebuilt snapshot is then compared
with the stored detection rows and the difference written: that heals a crash between the
interactions insert and the detection inserts (the redelivered batch is then all
duplicates and would emit nothing), and rows a rebuild no longer produces are superseded.

Each call comes in three steps so that a failure never leaves state half-changed:
:meth:`prepare` only reads (store reads, rebuilds, woken threads), and may be retried;
:meth:`commit` changes memory and cannot fail on I/O; the caller then writes
:class:`Output` (idempotent, retried until it succeeds) and only then acks.

Watermarks (docs/architecture.md "Detection"): the event-time watermark of an account is
the latest event time applied to it (signals included, changes not). An account is *live*
when that watermark is within ``live_window_ms`` of the clock; deadlines are then swept
at the clock (by the agent after each batch and by a timer between batches), else at the
event-time watermark, so a replay of history closes deadlines up to its last event time
and no further.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import murmur2

from streams.clients import Client, ClientsFile
from streams.contracts.envelopes import Envelope
from streams.contracts.tables import INTERACTIONS
from streams.detect.account_state import AccountState
from streams.detect.addressing import parent_of
from streams.detect.business_time import BusinessCalendar
from streams.detect.persons import StoredPerson
from streams.detect.responses import NEVER
from streams.detect.rows import Updates
from streams.detect.threads import declared_root
from streams.detect_io.queries import DetectStore
from streams.detect_io.tables import PUBLISHED, TABLES, Collector, by_table, store_key
from streams.interaction import SIGNAL_KINDS, Change, Interaction

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
AccountScope = tuple[str, str]  # (client_id, account_id)
MinuteScope = tuple[str, str, str]  # (client_id, account_id, platform)


def sweep_watermark(event_wm: int, clock_ms: int, live_window_ms: int) -> int:
    """Where deadlines stand for an account: the clock when live, else its event time."""
    if event_wm == NEVER:
        return NEVER
    return clock_ms if event_wm >= clock_ms - live_window_ms else event_wm


def partition_of(key: str, partitions: int) -> int:
    """The partition a record keyed ``key`` goes to (Kafka's default partitioner, as aiokafka's)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@dataclass(slots=True)
class Account:
    key: str
    client: Client
    account_id: str
    platforms: frozenset[str]
    state: AccountState
    event_wm: int = NEVER


_BATCH_FIELDS = INTERACTIONS.reader("client_id", "account_id", "platform", "event_id", "created_at", "kind")
_MENTIONED = INTERACTIONS.position("mentioned_ids")


@dataclass(slots=True)
class Batch:
    """A batch of interactions and changes, by account key (``client_id:account_id``)."""

    by_key: dict[str, tuple[list[Interaction], list[Change]]] = field(default_factory=dict)
    """Messages (signals are no state, so they are not decoded) and changes per account."""
    latest: dict[str, int] = field(default_factory=dict)
    """The latest event time per account, signals included."""
    minutes: dict[MinuteScope, set[int]] = field(default_factory=lambda: defaultdict(set))
    """Event minutes (epoch minute numbers) per (client, account, platform), signals included."""
    ids: dict[MinuteScope, set[str]] = field(default_factory=lambda: defaultdict(set))
    unattributed: list[Change] = field(default_factory=list)
    """Changes the payload could not attribute (e.g. a Bluesky delete): tried on every account."""
    prior_minutes: dict[MinuteScope, set[int]] = field(default_factory=dict)
    """Minutes the stored rows of this batch's events fell in before it was inserted
    (:meth:`DetectStore.minutes_of`): their per-minute rollups change too."""
    events: int = 0

    @classmethod
    def of(cls, envelopes: Iterable[Envelope]) -> Batch:
        """The batch of decoded envelopes (rows in column order, :mod:`streams.contracts.envelopes`)."""
        batch = cls()
        latest = batch.latest
        for env in envelopes:
            for row in env.interactions:
                batch.events += 1
                client_id, account_id, platform, event_id, at, kind = _BATCH_FIELDS(row)
                key = f"{client_id}:{account_id}"
                slot = batch._slot(key)
                scope = (client_id, account_id, platform)
                batch.minutes[scope].add(at // MINUTE_MS)
                batch.ids[scope].add(event_id)
                if at > latest.get(key, NEVER):
                    latest[key] = at
                if kind in SIGNAL_KINDS:
                    continue
                row = list(row)
                row[_MENTIONED] = tuple(row[_MENTIONED] or ())
                slot[0].append(Interaction(*row))
            for row in env.changes:
                batch.events += 1
                change = Change(*row)
                if change.client_id:
                    batch._slot(f"{change.client_id}:{change.account_id}")[1].append(change)
                else:
                    batch.unattributed.append(change)
        return batch

    def _slot(self, key: str) -> tuple[list[Interaction], list[Change]]:
        slot = self.by_key.get(key)
        if slot is None:
            slot = self.by_key[key] = ([], [])
        return slot

    def event_ids(self) -> dict[MinuteScope, set[str]]:
        return self.ids


@dataclass(slots=True)
class Loaded:
    """An account rebuilt from the store, not yet installed."""

    account: Account
    diff: Collector
    max_version: int


@dataclass(slots=True)
class Prepared:
    loaded: dict[str, Loaded] = field(default_factory=dict)
    restores: dict[str, tuple[list[Interaction], list[Change]]] = field(default_factory=dict)
    persons: dict[str, list[StoredPerson]] = field(default_factory=dict)
    """Evicted persons the batch names again, per account, as the store holds them."""
    alerts: dict[str, dict[tuple[str, str], tuple[str, int | None]]] = field(default_factory=dict)
    """The stored alerts of the restored threads' messages, per account: a restored thread
    must know them, or a change that withdraws one emits nothing."""
    deletes: dict[str, list[Change]] = field(default_factory=dict)
    """Stored deletes of the batch's late statuses whose delete memory may have dropped,
    per account (:meth:`AccountState.deletes_to_look_up`)."""


@dataclass(slots=True)
class Output:
    """What one batch or sweep must write and publish."""

    version: int
    collector: Collector = field(default_factory=Collector)
    rollup_accounts: set[AccountScope] = field(default_factory=set)
    rollup_minutes: dict[MinuteScope, set[int]] = field(default_factory=lambda: defaultdict(set))
    message_ids: dict[MinuteScope, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Event ids of the batch's messages: a stored message that came again (another version,
    a handle now known) changes its open item's text, whether or not detection rows change."""
    restored_threads: int = 0

    def add(self, updates: Updates) -> None:
        self.collector.add(updates)
        for r in updates.responses:
            self.rollup_minutes[(r.client_id, r.account_id, r.platform)].add(r.received_at // MINUTE_MS)

    @property
    def rollup_scope(self) -> bool:
        return bool(self.rollup_accounts or any(self.rollup_minutes.values()))

    def __bool__(self) -> bool:
        return bool(len(self.collector) or self.rollup_scope)

    def topic_records(self) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """``(key, value)`` per topic (logical name) and account key: ``{"client_id", "account_id", "rows"}``.

        One record per account and batch carries all its changed rows (rows are dataclasses
        that orjson encodes as objects): per-record cost is what limits faust, and a
        replay's first batch changes thousands of threads and alerts per account.
        """
        out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for spec in PUBLISHED:
            if spec.topic is None:
                continue
            per_key: dict[tuple[str, str], list[Any]] = defaultdict(list)
            for row in self.collector.of(spec.name):
                per_key[(row.client_id, row.account_id)].append(row)
            out[spec.topic] = [(f"{c}:{a}", {"client_id": c, "account_id": a, "rows": rows})
                              for (c, a), rows in sorted(per_key.items())]
        return out


class Detector:
    """The accounts one worker owns, their states and the version of the rows it writes."""

    def __init__(self, clients: ClientsFile, store: DetectStore, *, live_window_ms: int, horizon_ms: int,
                 max_evicted: int = 100_000, rebuild_page: int = 20_000,
                 max_person_convs: int | None = None) -> None:
        self.store = store
        self.max_evicted = max_evicted
        self.max_person_convs = max_person_convs
        self.rebuild_page = rebuild_page
        self.ready: dict[str, Loaded] = {}
        """Accounts rebuilt outside the lock (:meth:`load`), installed by the next prepare."""
        self.generation = 0
        """Counts :meth:`drop`: a rebuild started before a drop is stale."""
        self.live_window_ms = live_window_ms
        self.horizon_ms = horizon_ms
        self.tracked: dict[str, tuple[Client, str, frozenset[str]]] = {}
        platforms: dict[str, set[str]] = defaultdict(set)
        for client, acc in clients.accounts():
            platforms[f"{client.id}:{acc.account_id}"].add(acc.platform)
        for client, acc in clients.accounts():
            key = f"{client.id}:{acc.account_id}"
            self.tracked[key] = (client, acc.account_id, frozenset(platforms[key]))
        self.calendars = {c.id: BusinessCalendar.from_client(c) for c in clients.clients}
        self.accounts: dict[str, Account] = {}
        self.pending: set[str] = set()
        self.version = 0
        self.unknown: dict[str, int] = defaultdict(int)

    # -- ownership --------------------------------------------------------------------

    def own(self, partitions: set[int], partition_count: int) -> set[str]:
        """Claim the tracked accounts whose key maps to ``partitions``; they load eagerly,
        so their deadlines are swept at the clock even if no event arrives for them."""
        keys = {k for k in self.tracked if partition_of(k, partition_count) in partitions}
        self.pending |= keys - self.accounts.keys()
        return keys

    def drop(self) -> int:
        """Forget every state (partitions revoked): a re-assigned key is rebuilt."""
        n = len(self.accounts)
        self.accounts.clear()
        self.pending.clear()
        self.ready.clear()
        self.generation += 1
        return n

    # -- step 1: reads ----------------------------------------------------------------

    def prepare(self, batch: Batch | None, clock_ms: int, load_missing: bool = True) -> Prepared:
        """Store reads the commit needs. Changes no state, so it may be retried.

        Accounts rebuilt ahead (:attr:`ready`) are installed as they are; the others are
        rebuilt here, unless ``load_missing`` is false (the agent's timer: it leaves them to
        their rebuild tasks, outside the lock)."""
        out = Prepared()
        keys = set(self.pending)
        if batch is not None:
            keys.update(batch.by_key)
        for key in sorted(keys):
            if key in self.accounts:
                continue
            if key not in self.tracked:
                self.unknown[key] += 1
                if self.unknown[key] == 1:
                    log.warning("interactions for %s, which the clients file does not track: not detected", key)
                continue
            ready = self.ready.get(key)
            if ready is not None:
                out.loaded[key] = ready
            elif load_missing:
                out.loaded[key] = self.load(key, clock_ms)
        if batch is not None:
            named = set(batch.by_key)
            if batch.unattributed:  # applied to every account of their platform
                on = {c.platform for c in batch.unattributed}
                named.update(k for k, a in [*self.accounts.items(), *((k, ld.account) for k, ld in out.loaded.items())]
                             if a.platforms & on)
            for key in sorted(named):
                msgs, own_changes = batch.by_key.get(key, ([], []))
                # An account rebuilt in this very call counts too: its rebuild may have read
                # before the batch's insert, so the batch's late statuses were not in it.
                acc = self.accounts.get(key) or (out.loaded[key].account if key in out.loaded else None)
                if acc is None:
                    continue
                book = acc.state.book
                if book.evicted or book.forgotten:
                    gone = [c for c in [*own_changes, *batch.unattributed]
                            if c.change == "delete" and c.platform in acc.platforms]
                    restore = self._restore(acc, msgs, gone)
                    if restore[0]:
                        out.restores[key] = restore
                        alerts: dict[tuple[str, str], tuple[str, int | None]] = {}
                        for platform in sorted({m.platform for m in restore[0]}):
                            alerts.update(self.store.alert_states(
                                acc.client.id, acc.account_id, platform,
                                [m.event_id for m in restore[0] if m.platform == platform]))
                        if alerts:
                            out.alerts[key] = alerts
                wanted = acc.state.persons_to_restore(msgs, woken=out.restores.get(key, ([], []))[0])
                persons: list[StoredPerson] = []
                for platform in sorted({p for p, _ in wanted}):
                    persons += self.store.persons(acc.client.id, acc.account_id, platform,
                                                  [person for p, person in wanted if p == platform])
                if persons:
                    out.persons[key] = persons
                deletes: list[Change] = []
                for platform, ids in sorted(acc.state.deletes_to_look_up(msgs).items()):
                    deletes += self.store.deletes(acc.client.id, acc.account_id, platform, ids)
                if deletes:
                    out.deletes[key] = deletes
        return out

    def load(self, key: str, clock_ms: int, store: DetectStore | None = None) -> Loaded:
        """Rebuild one account from the store (reads only: no state of this detector changes).

        Interactions and stored rows are read a page (``rebuild_page``) at a time: each page
        of messages is applied as it comes (the state does not depend on order), and the
        stored rows are compared with the rebuilt snapshot page by page, so no copy of the
        account's whole history sits in memory beside its state. The agent runs this
        outside the detection lock (:class:`streams.detect_io.rebuilds.Rebuilds`).
        """
        client, account_id, platforms = self.tracked[key]
        s = store or self.store  # its own client when run beside the lock holder's reads
        event_wm = s.event_watermark(client.id, account_id)
        wm = sweep_watermark(event_wm, clock_ms, self.live_window_ms)
        # Unattributed deletes of statuses not stored yet, as far back as eviction keeps them.
        since = (clock_ms if wm == NEVER else wm) - self.horizon_ms
        changes = s.deletes(client.id, account_id, unattributed_on=platforms, unattributed_since_ms=since)
        state = AccountState(client, account_id, self.calendars[client.id], max_evicted=self.max_evicted,
                             max_person_convs=self.max_person_convs)
        state.responses.deletes_known_from = since  # older unattributed ones: looked up when needed
        messages = 0
        for page in s.interaction_pages(client.id, account_id, self.rebuild_page):
            page.sort(key=lambda m: (m.created_at, m.event_id))
            state.apply(page, changes)
            changes, messages = [], messages + len(page)
        if changes:
            state.apply((), changes)
        if wm != NEVER:
            state.sweep(wm)
        snapshot = state.snapshot()
        diff = Collector()
        current = by_table(snapshot)
        for spec in TABLES:
            mine = {store_key(row): row for row in current[spec.name]}
            for stored_page in s.stored_pages(spec, client.id, account_id, self.rebuild_page):
                for stored in stored_page:
                    row = mine.pop(store_key(stored), None)
                    if row is None:
                        diff.put(spec.name, *spec.gone(stored))
                    elif row != stored:
                        diff.put(spec.name, row, False)
            for row in mine.values():
                diff.put(spec.name, row, False)
        log.info("rebuilt %s from the store: %d messages, %d threads, %d rows to correct",
                 key, messages, len(snapshot.threads), len(diff))
        account = Account(key, client, account_id, platforms, state, event_wm)
        return Loaded(account, diff, s.max_version(client.id, account_id))

    def _restore(self, acc: Account, msgs: list[Interaction],
                 gone: Iterable[Change] = ()) -> tuple[list[Interaction], list[Change]]:
        """The stored messages (and deletes) of the evicted threads this batch wakes up.

        A delete (``gone``) of a status not in memory wakes its thread too: the status may
        be in an evicted thread, whose stored response row would else stay ``breached``.
        """
        book = acc.state.book
        evicted_platforms = {p for p, _ in book.evicted} | book.forgotten
        roots: dict[str, set[str]] = defaultdict(set)
        for platform, root in acc.state.needs_restore(msgs):
            roots[platform].add(root)
        ids: dict[str, set[str]] = defaultdict(set)
        for m in msgs:
            # Where the platform names no root (Mastodon), a reply to an evicted post can not
            # be traced to its thread from memory: look its parent up in the store.
            if m.platform in evicted_platforms and m.kind not in SIGNAL_KINDS:
                parent = parent_of(m)
                if (parent is not None and declared_root(m, book.account(m.platform)) is None
                        and book.post(m.platform, parent) is None):
                    ids[m.platform].add(parent)
        for c in gone:
            if c.platform in evicted_platforms and book.post(c.platform, c.event_id) is None:
                ids[c.platform].add(c.event_id)
        found: list[Interaction] = []
        deletes: list[Change] = []
        for platform in sorted(set(roots) | set(ids)):
            rows = self.store.thread_closure(acc.client.id, acc.account_id, platform, roots[platform],
                                             ids[platform])
            if rows:
                found.extend(rows)
                deletes.extend(self.store.deletes(acc.client.id, acc.account_id, platform,
                                                  [m.event_id for m in rows]))
        return found, deletes

    # -- step 2: memory ---------------------------------------------------------------

    def commit(self, prepared: Prepared, batch: Batch | None, clock_ms: int) -> Output:
        """Install rebuilt accounts, apply the batch, sweep; return what to write."""
        for loaded in prepared.loaded.values():
            self.version = max(self.version, loaded.max_version)
        self.version = max(clock_ms, self.version + 1)
        out = Output(self.version)
        for key, loaded in prepared.loaded.items():
            self.accounts[key] = loaded.account
            self.pending.discard(key)
            self.ready.pop(key, None)
            for table, rows in loaded.diff.rows.items():
                for row, deleted in rows.values():
                    out.collector.put(table, row, deleted)
            out.rollup_accounts.add((loaded.account.client.id, loaded.account.account_id))
        touched: list[Account] = []
        if batch is not None:
            for scopes in (batch.prior_minutes, batch.minutes):
                for scope, minutes in scopes.items():
                    out.rollup_minutes[scope] |= minutes
            # Evicted persons and threads first, as they were before the batch (an account
            # woken only by an unattributed delete included), then the batch.
            for key in sorted(set(prepared.restores) | set(prepared.persons)):
                acc = self.accounts.get(key)
                if acc is None:
                    continue
                msgs = batch.by_key.get(key, ([], []))[0]
                acc.state.restore_persons(prepared.persons.get(key, ()))
                for m in msgs:
                    out.message_ids[(m.client_id, m.account_id, m.platform)].add(m.event_id)
                restored, restored_changes = prepared.restores.get(key, ([], []))
                if restored:
                    out.restored_threads += len(acc.state.needs_restore(msgs)) or 1
                    # The woken threads come back as they were before the batch, then the
                    # batch applies to them: what it changes is then emitted against what
                    # the store holds (a late answer withdraws the alert stored before the
                    # eviction; a late Mastodon parent retracts the provisional thread its
                    # replies were filed under). Applied at once, neither existed in memory.
                    acc.state.restore_alerts(prepared.alerts.get(key, {}))
                    fresh = {(m.platform, m.event_id) for m in msgs}
                    out.add(acc.state.apply([m for m in restored if (m.platform, m.event_id) not in fresh],
                                            restored_changes))
            for key, (msgs, changes) in batch.by_key.items():
                acc = self.accounts.get(key)
                if acc is None:
                    continue
                late_deletes = prepared.deletes.get(key, [])
                out.add(acc.state.apply(msgs, [*late_deletes, *changes]))
                acc.event_wm = max(acc.event_wm, batch.latest.get(key, NEVER))
                touched.append(acc)
            if batch.unattributed:
                for acc in self.accounts.values():
                    mine = [c for c in batch.unattributed if c.platform in acc.platforms]
                    if mine:
                        out.add(acc.state.apply((), mine))
        for acc in touched if batch is not None else list(self.accounts.values()):
            wm = sweep_watermark(acc.event_wm, clock_ms, self.live_window_ms)
            if wm > acc.state.watermark:
                out.add(acc.state.sweep(wm))
        return out

    def evict(self, clock_ms: int) -> int:
        """Evict threads idle past the horizon (by each account's sweep watermark)."""
        evicted = 0
        for acc in self.accounts.values():
            wm = sweep_watermark(acc.event_wm, clock_ms, self.live_window_ms)
            if wm != NEVER:
                n = len(acc.state.evict_idle(wm, self.horizon_ms))
                if n:
                    log.info("evicted %d idle threads of %s (horizon %.0f s)", n, acc.key, self.horizon_ms / 1000)
                evicted += n
        return evicted

    def to_load(self, keys: Iterable[str]) -> list[str]:
        """The tracked accounts among ``keys`` that are neither loaded nor rebuilt ahead."""
        return sorted(k for k in keys if k in self.tracked and k not in self.accounts and k not in self.ready)

    def threads_in_memory(self) -> int:
        return sum(len(acc.state.book) for acc in self.accounts.values())

    def sizes(self) -> dict[str, int]:
        """The bounded structures' sizes over every owned account (the soak reports them)."""
        accs = [acc.state for acc in self.accounts.values()]
        return {"threads": sum(len(s.book) for s in accs),
                "evicted_ids": sum(len(s.book.evicted) for s in accs),
                "persons": sum(s.persons_in_memory() for s in accs),
                "person_conversations": sum(s.conversations_in_memory() for s in accs),
                "responses": sum(len(s.responses) for s in accs)}
