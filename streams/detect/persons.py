"""The persons one tracked account knows: handles, conversations per thread, and their bounds.

:class:`~streams.detect.account_state.AccountState` routes facts here; this module owns
what memory keeps of a person and what it may forget. A person no post in memory names,
whose conversations all ended before the state horizon, is evicted whole; a person who
keeps coming back keeps at most ``max_convs`` conversation summaries past the horizon, the
settled ones beyond that being folded into one running roll-up (the store holds their final
rows). Either way the book remembers that it forgot something (:attr:`PersonBook.evicted`,
:attr:`partial`). An evicted person is restored from the store by the first batch that names
them; a partial one only by a batch that could change what was folded: one that wakes a
thread they talked in, or gives them a new handle (every conversation row carries it)
(:meth:`PersonBook.to_restore`, :meth:`PersonBook.restore`). Anything else changes only
conversations still in memory, and their connection row is the roll-up of those and the
folded one, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from streams.detect.addressing import payload_addressing
from streams.detect.conversations import ConnectionSummary, ConversationSummary, connection
from streams.detect.identity import canonical_id
from streams.detect.responses import NEVER
from streams.detect.threads import ThreadId
from streams.interaction import Interaction

PersonKey = tuple[str, str]
"""``(platform, person_id)``."""


def persons_named(msg: Interaction) -> Iterator[PersonKey]:
    """Whom a message names by itself: its author, whom it addresses, its parent's author."""
    platform = msg.platform
    yield platform, canonical_id(platform, msg.author_id)
    yield from ((platform, p) for p in payload_addressing(msg).named)
    if msg.parent_author_id:
        yield platform, canonical_id(platform, msg.parent_author_id)


class PersonState:
    """What the account knows of one person: handle and conversations per thread."""

    __slots__ = ("handle", "handle_key", "convs", "folded")

    def __init__(self) -> None:
        self.handle = ""
        self.handle_key: tuple[int, str] = (NEVER, "")
        self.convs: dict[ThreadId, ConversationSummary] = {}
        self.folded: ConnectionSummary | None = None
        """Roll-up of the settled conversations dropped from :attr:`convs` (:meth:`PersonBook.fold`)."""


@dataclass(frozen=True, slots=True)
class StoredPerson:
    """What the store holds of an evicted person: enough to restore :class:`PersonState`."""

    platform: str
    person_id: str
    convs: dict[ThreadId, ConversationSummary]
    """Their live (not retracted) conversation rows, by thread."""
    handle: str = ""
    handle_key: tuple[int, str] = (NEVER, "")
    """``(time, event id)`` of the inbound message that gave ``handle``."""


class PersonBook:
    """Every person in memory for one account, and what was forgotten of the others."""

    __slots__ = ("_persons", "partial", "max_convs", "evicted")

    def __init__(self, max_convs: int | None = None) -> None:
        self._persons: dict[PersonKey, PersonState] = {}
        self.partial: set[PersonKey] = set()
        """Persons whose settled conversations were folded (:meth:`fold`)."""
        self.max_convs = max_convs
        """Past the horizon, a person in memory keeps at most this many settled conversations
        (``None``: all of them)."""
        self.evicted = False
        """Some person state was forgotten: a person not in memory may be in the store."""

    def __len__(self) -> int:
        return len(self._persons)

    def __contains__(self, key: PersonKey) -> bool:
        return key in self._persons

    def get(self, key: PersonKey) -> PersonState | None:
        return self._persons.get(key)

    def setdefault(self, key: PersonKey) -> PersonState:
        """The person's state, created empty on first sight."""
        state = self._persons.get(key)
        if state is None:
            state = self._persons[key] = PersonState()
        return state

    def sorted_items(self) -> Iterator[tuple[PersonKey, PersonState]]:
        for key in sorted(self._persons):
            yield key, self._persons[key]

    def conversations(self) -> int:
        """Conversation summaries held in memory (bounded by :meth:`fold`)."""
        return sum(len(state.convs) for state in self._persons.values())

    # -- forgetting -------------------------------------------------------------------

    def evict(self, named: set[PersonKey], in_memory: set[ThreadId], cutoff: int) -> tuple[int, int]:
        """Drop persons not in ``named`` whose conversations all ended before ``cutoff``,
        then :meth:`fold` the ones who stay. Returns ``(persons evicted, conversations folded)``.

        Such a person can only change again through a message that names them, which
        :meth:`to_restore` finds before the batch is applied.
        """
        gone = [k for k, state in self._persons.items()
                if k not in named and all(c.last_at < cutoff for c in state.convs.values())]
        for key in gone:
            del self._persons[key]
            self.partial.discard(key)
        if gone:
            self.evicted = True
        return len(gone), self.fold(cutoff, in_memory)

    def fold(self, cutoff: int, in_memory: set[ThreadId]) -> int:
        """Fold the settled conversations of persons holding more than ``max_convs`` into
        their running roll-up (:attr:`PersonState.folded`), dropping the summaries.

        Settled: its thread is no longer in memory and it ended before ``cutoff``, so the
        store holds its final row. Without this a person who keeps coming back would hold one
        summary per conversation forever. A settled conversation changes again only when its
        thread wakes, which brings the thread's messages back and so names the person
        (:meth:`to_restore`); until then the roll-up stands in for it in the connection row.
        Returns how many summaries were folded.
        """
        limit = self.max_convs
        if limit is None:
            return 0
        folded = 0
        for key, state in self._persons.items():
            if len(state.convs) <= limit:
                continue
            settled = [tid for tid, c in state.convs.items() if tid not in in_memory and c.last_at < cutoff]
            if settled:
                state.folded = connection([state.convs.pop(tid) for tid in settled], state.folded)
                self.partial.add(key)
                self.evicted = True
                folded += len(settled)
        return folded

    # -- restoring --------------------------------------------------------------------

    def to_restore(self, named: Iterable[PersonKey], woken: Iterable[PersonKey] = (),
                   handles: Iterable[tuple[PersonKey, str]] = ()) -> set[PersonKey]:
        """The persons the store must give back before a batch: those it ``named`` that memory
        does not hold, and the partial ones whose fold may change (see :meth:`fold`): named
        by a ``woken`` thread, or given a handle other than theirs by one of the batch's
        messages (``handles``: author and handle; every conversation row carries it).

        Empty until something was forgotten.
        """
        if not self.evicted:
            return set()
        out = {k for k in named if k not in self._persons}
        out.update(k for k in woken if k in self.partial)
        out.update(k for k, handle in handles if k in self.partial and self._persons[k].handle != handle)
        return out

    def restore(self, stored: Iterable[StoredPerson]) -> int:
        """Put forgotten persons back as the store has them; returns how many came back."""
        restored = 0
        for sp in stored:
            key = (sp.platform, sp.person_id)
            state = self._persons.get(key)
            if state is not None:
                if key in self.partial:  # memory wins for what it kept; the store gives back the rest
                    state.convs = {**sp.convs, **state.convs}
                    state.folded = None
                    self.partial.discard(key)
                    restored += 1
                continue
            state = self._persons[key] = PersonState()
            state.handle, state.handle_key = sp.handle, sp.handle_key
            state.convs = dict(sp.convs)
            restored += 1
        return restored
