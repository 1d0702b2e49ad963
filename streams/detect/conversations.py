"""Conversations and connections: real exchanges between an account and a person.

A *conversation* is a (thread, person) pair in which the person addressed the account and
the account addressed the person, each at least once (README "conversation"). Its turns
are the messages of that thread by either of them addressing the other; ``opened_by`` is
the author of the earliest one. Two turns at the same millisecond are ordered by event id
so the result never depends on arrival order.

A *connection* is the (account, person) roll-up: conversations, turns, first and last
conversation time, who opened each; the person is *returning* once they have had
conversations in two or more distinct threads.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

ACCOUNT = "account"
PERSON = "person"


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """The metrics of one conversation."""

    turns: int
    opened_by: str
    started_at: int
    last_at: int


class Turn(Protocol):
    """A message as a pair sees it (a :class:`~streams.detect.threads.Post` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def at(self) -> int: ...


def _order(turn: Turn) -> tuple[int, str]:
    return (turn.at, turn.id)


def _time(turn: Turn) -> int:
    return turn.at


class Pair:
    """Messages between the account and one person within one thread.

    Both sides are kept sorted by (time, event id), which makes every question a pair is
    asked cheap however long the exchange (a support DM can run for years): whether a
    message is known, the conversation summary, the first answer to a message, and which
    messages a new answer is the first answer to. Adding is idempotent, so a message can
    be registered again whenever more is known about it without counting it twice.

    The sides are tuples, replaced on each insert: most pairs hold one or two messages a
    side and many none, and an empty tuple is shared where an empty list costs 56 bytes
    (a list also over-allocates). An insert copies the side, which a list insert shifts
    anyway, so even a long exchange stays linear per message.
    """

    __slots__ = ("person", "inbound", "outbound")

    def __init__(self, person: str) -> None:
        self.person = person
        self.inbound: tuple[Turn, ...] = ()
        """The person's messages addressing the account, in (time, event id) order."""
        self.outbound: tuple[Turn, ...] = ()
        """The account's messages addressing the person, in (time, event id) order."""

    def __len__(self) -> int:
        return len(self.inbound) + len(self.outbound)

    @staticmethod
    def _slot(side: tuple[Turn, ...], turn: Turn) -> int | None:
        """Where ``turn`` goes in ``side``; ``None`` when it is already there."""
        i = bisect_left(side, _order(turn), key=_order)
        if i < len(side) and side[i].id == turn.id:
            return None
        return i

    def add_inbound(self, turn: Turn) -> bool:
        """Register a message of the person; ``False`` when it was already known."""
        side = self.inbound
        i = self._slot(side, turn)
        if i is None:
            return False
        self.inbound = (*side[:i], turn, *side[i:])
        return True

    def add_outbound(self, turn: Turn) -> tuple[Turn, ...] | None:
        """Register a message of the account; ``None`` when it was already known.

        Returns the person's messages whose first answer it now is: those received after
        the account's previous message and no later than this one.
        """
        i = self._slot(self.outbound, turn)
        if i is None:
            return None
        side = self.outbound = (*self.outbound[:i], turn, *self.outbound[i:])
        at = turn.at
        if (i > 0 and side[i - 1].at == at) or (i + 1 < len(side) and side[i + 1].at == at):
            return ()  # an answer at the same instant was there already
        lo = bisect_right(self.inbound, side[i - 1].at, key=_time) if i > 0 else 0
        hi = bisect_right(self.inbound, at, key=_time)
        return self.inbound[lo:hi]

    def first_answer(self, at: int) -> int | None:
        """Time of the account's first message at or after ``at`` (README "first response")."""
        i = bisect_left(self.outbound, at, key=_time)
        return self.outbound[i].at if i < len(self.outbound) else None

    @property
    def is_conversation(self) -> bool:
        return bool(self.inbound) and bool(self.outbound)

    def summary(self) -> ConversationSummary | None:
        """The conversation's metrics, or ``None`` while it is not (yet) a conversation."""
        if not self.is_conversation:
            return None
        first_in, first_out = _order(self.inbound[0]), _order(self.outbound[0])
        opened_by, started = (PERSON, first_in) if first_in < first_out else (ACCOUNT, first_out)
        return ConversationSummary(
            turns=len(self),
            opened_by=opened_by,
            started_at=started[0],
            last_at=max(self.inbound[-1].at, self.outbound[-1].at),
        )


@dataclass(frozen=True, slots=True)
class ConnectionSummary:
    """The (account, person) roll-up of conversations."""

    conversations: int
    turns: int
    first_at: int
    last_at: int
    returning: bool
    opened_by_account: int
    opened_by_person: int


def connection(conversations: Iterable[ConversationSummary],
               folded: ConnectionSummary | None = None) -> ConnectionSummary | None:
    """Roll up one person's conversations (one per thread); ``None`` when there are none.

    ``folded`` is the roll-up of the conversations memory dropped
    (:meth:`streams.detect.persons.PersonBook.fold`): every figure here is a count, a sum, a
    minimum or a maximum, so the roll-up of all conversations is the two combined, exactly.
    """
    convs = list(conversations)
    if not convs:
        return folded
    n, turns = len(convs), sum(c.turns for c in convs)
    first_at, last_at = min(c.started_at for c in convs), max(c.last_at for c in convs)
    by_account = sum(1 for c in convs if c.opened_by == ACCOUNT)
    by_person = sum(1 for c in convs if c.opened_by == PERSON)
    if folded is not None:
        n, turns = n + folded.conversations, turns + folded.turns
        first_at, last_at = min(first_at, folded.first_at), max(last_at, folded.last_at)
        by_account, by_person = by_account + folded.opened_by_account, by_person + folded.opened_by_person
    return ConnectionSummary(conversations=n, turns=turns, first_at=first_at, last_at=last_at, returning=n >= 2,
                             opened_by_account=by_account, opened_by_person=by_person)
