"""First responses, SLA deadlines, response status and breach alerts.

README "first response": an inbound message m (person P, thread T, time t) is answered by
the first message of the account in T that addresses P with time >= t, so answering P's
follow-up answers P's earlier messages too. The deadline is t plus the client's SLA in
business time and depends on the message alone.

Everything here is a fact of event time plus one number, the *watermark*: the time up to
which deadlines are considered passed (the clock when live, the latest processed event
time when replaying). Given the facts (received, due, answered, deleted) and the
watermark, :func:`response_status` and :func:`alert_state` say what the rows must be;
callers emit a row whenever that value changes. That keeps live runs, replays, restarts
and out-of-order arrival in agreement.

Deletes: a delete only cancels a message's pending alert; it is applied by event time.
A message deleted before it was answered is ``cancelled``; if it was deleted at or before
its deadline no alert ever opens, if it was deleted after (an alert was due) the alert is
closed as ``cancelled`` at the delete time.

Alerts that a late-arriving answer or delete shows should never have opened (an answer
before the deadline that arrived after the sweep passed it) are re-emitted with status
``withdrawn``; a reference recomputation simply has no such alert.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from streams.detect.business_time import BusinessCalendar

OPEN = "open"
BREACHED = "breached"
ANSWERED = "answered"
CANCELLED = "cancelled"

ALERT_BREACHED = "breached"
ALERT_RESOLVED = "resolved"
ALERT_CANCELLED = "cancelled"
ALERT_WITHDRAWN = "withdrawn"

_STILL_BREACHED: tuple[str, int | None] = (ALERT_BREACHED, None)
"""Shared by every open alert that the account keeps (one tuple, not one per alert)."""

NEVER = -(2**62)
"""The watermark before any sweep: no deadline has passed."""

ResponseKey = tuple[str, str]
"""``(platform, event_id)`` of the inbound message."""


def first_answer(answer_times: Sequence[int], received_at: int) -> int | None:
    """The earliest of the (sorted) account answer times that is >= ``received_at``."""
    i = bisect_left(answer_times, received_at)
    return answer_times[i] if i < len(answer_times) else None


def response_status(due_at: int, answered_at: int | None, deleted_at: int | None, watermark: int) -> str:
    """``open`` / ``breached`` / ``answered`` / ``cancelled`` (README "response status")."""
    if answered_at is not None and (deleted_at is None or answered_at <= deleted_at):
        return ANSWERED
    if deleted_at is not None:
        return CANCELLED
    return BREACHED if due_at <= watermark else OPEN


def alert_state(
    due_at: int, answered_at: int | None, deleted_at: int | None, watermark: int
) -> tuple[str, int | None] | None:
    """``(status, resolved_at)`` of the message's breach alert, ``None`` when there is none.

    An alert exists once the deadline is at or behind the watermark and the message was
    neither answered nor deleted by its deadline. It opens at the deadline (``opened_at``
    = ``due_at``) and is resolved by a later answer or cancelled by a later delete.
    """
    if due_at > watermark:
        return None
    if answered_at is not None and answered_at <= due_at:
        return None
    if deleted_at is not None and deleted_at <= due_at:
        return None
    if answered_at is not None and (deleted_at is None or answered_at <= deleted_at):
        return (ALERT_RESOLVED, answered_at)
    if deleted_at is not None:
        return (ALERT_CANCELLED, deleted_at)
    return _STILL_BREACHED


class Message(Protocol):
    """An inbound message as seen here (a :class:`~streams.detect.threads.Post` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def at(self) -> int: ...

    @property
    def author(self) -> str: ...

    @property
    def handle(self) -> str: ...

    @property
    def platform(self) -> str: ...


class Inbound:
    """One inbound message waiting for, or having got, its first response."""

    __slots__ = ("msg", "due", "answered_at")

    def __init__(self, msg: Message, due: int) -> None:
        self.msg = msg
        self.due = due
        self.answered_at: int | None = None

    @property
    def key(self) -> ResponseKey:
        return (self.msg.platform, self.msg.id)

    def __lt__(self, other: Inbound) -> bool:
        # The deadline queue holds the records themselves (a (due, record) tuple per entry
        # would cost 64 bytes more per pending message); ties between equal deadlines are
        # broken by identity, rows are sorted by key anyway.
        if self.due != other.due:
            return self.due < other.due
        return id(self) < id(other)


class ResponseBook:
    """Inbound messages of one account, their deletes, and the deadline queue of the sweep."""

    def __init__(self, calendar: BusinessCalendar, sla_minutes: int) -> None:
        self.calendar = calendar
        self.sla_minutes = sla_minutes
        self.watermark = NEVER
        self._records: dict[str, dict[str, Inbound]] = {}  # platform -> event id -> record
        self._deleted: dict[str, dict[str, int]] = {}  # platform -> event id -> delete time
        self.deletes_known_from = NEVER
        """Every delete at or after this time is in memory, and so is every delete of a status
        held in memory; an older one of a status not held may have been dropped
        (:meth:`forget_deletes`) or never loaded (a rebuild reads unattributed deletes one
        horizon back), so a status older than this that arrives now must have its delete
        looked up in the store (:meth:`may_miss_delete`)."""
        self._queue: list[Inbound] = []
        """Records whose deadline was ahead of the watermark when added, earliest first."""

    def due_at(self, received_at: int) -> int:
        """The SLA deadline of a message received at ``received_at``."""
        return self.calendar.add_business(received_at, self.sla_minutes)

    def get(self, platform: str, event_id: str) -> Inbound | None:
        return self._records.get(platform, {}).get(event_id)

    def records(self) -> Iterator[Inbound]:
        for by_id in self._records.values():
            yield from by_id.values()

    def __len__(self) -> int:
        return sum(len(by_id) for by_id in self._records.values())

    def add(self, msg: Message) -> Inbound:
        """Register an inbound message (idempotent: a known record is kept, follows ``msg``)."""
        by_id = self._records.setdefault(msg.platform, {})
        rec = by_id.get(msg.id)
        if rec is not None:
            rec.msg = msg
            return rec
        rec = by_id[msg.id] = Inbound(msg, self.due_at(msg.at))
        if rec.due > self.watermark:
            heapq.heappush(self._queue, rec)
        return rec

    def delete(self, platform: str, event_id: str, at: int) -> Inbound | None:
        """Record a delete (the earliest wins); the affected record, if it is known."""
        by_id = self._deleted.setdefault(platform, {})
        prev = by_id.get(event_id)
        if prev is None or at < prev:
            by_id[event_id] = at
        return self.get(platform, event_id)

    def may_miss_delete(self, event_time: int) -> bool:
        """Whether a delete of a status with this event time may be missing from memory.

        A delete is never earlier than its status (its time is the platform's time of the
        delete, or when it was seen gone), so a status at or after
        :attr:`deletes_known_from` has every delete of it in memory.
        """
        return event_time < self.deletes_known_from

    def deleted_at(self, rec: Inbound) -> int | None:
        return self._deleted.get(rec.msg.platform, {}).get(rec.msg.id)

    def status(self, rec: Inbound) -> str:
        return response_status(rec.due, rec.answered_at, self.deleted_at(rec), self.watermark)

    def alert(self, rec: Inbound) -> tuple[str, int | None] | None:
        return alert_state(rec.due, rec.answered_at, self.deleted_at(rec), self.watermark)

    def sweep(self, watermark: int) -> list[Inbound]:
        """Advance the watermark; return the messages newly breached (whose alert opens now).

        Live, ``watermark`` is the clock; in a replay, the latest event time processed.
        A watermark behind the current one changes nothing (it never goes back).
        """
        self.watermark = max(self.watermark, watermark)
        out: list[Inbound] = []
        while self._queue and self._queue[0].due <= self.watermark:
            rec = heapq.heappop(self._queue)
            if self.get(*rec.key) is rec and self.alert(rec) is not None:
                out.append(rec)
        return out

    def forget(self, platform: str, event_ids: Iterable[str]) -> None:
        """Drop records (their thread was evicted); stale queue entries are skipped later."""
        by_id = self._records.get(platform, {})
        for event_id in event_ids:
            by_id.pop(event_id, None)

    def forget_deletes(self, before_ms: int, in_memory: Callable[[str, str], bool] | None = None) -> int:
        """Drop deletes older than ``before_ms`` of messages not (or no longer) known.

        ``in_memory(platform, event_id)`` keeps the deletes of statuses the caller still
        holds without a record here: a reply whose parent has not arrived is not inbound
        *yet* (its parent's author decides whom it addresses), and when the parent comes it
        becomes inbound without arriving again, so nothing would look its delete up. Dropped,
        it stayed ``breached`` where it is ``cancelled`` (found by `rapport chaos`).
        """
        dropped = 0
        for platform, by_id in self._deleted.items():
            known = self._records.get(platform, {})
            for event_id, at in list(by_id.items()):
                if at < before_ms and event_id not in known and not (in_memory and in_memory(platform, event_id)):
                    del by_id[event_id]
                    dropped += 1
        if dropped:
            self.deletes_known_from = max(self.deletes_known_from, before_ms)
        return dropped
