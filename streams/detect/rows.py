"""The rows detection emits, one frozen dataclass per ClickHouse table.

Field names and order are the table's columns. Two fields are not plain metrics:
``ThreadRow.retracted`` (a provisional thread was folded into a larger one; the sink
supersedes the row) and ``ConversationRow.retracted`` (the conversation of such a thread,
which lives on under the larger thread's root). Both are ``False`` on every ordinary row.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class ThreadRow:
    client_id: str
    account_id: str
    platform: str
    root_id: str
    posts: int
    depth: int
    participants: int
    account_posts: int
    first_at: int
    last_at: int
    retracted: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.platform, self.root_id)

    @classmethod
    def retraction(cls, client_id: str, account_id: str, tid: tuple[str, str]) -> ThreadRow:
        """The row that supersedes a provisional thread folded into a larger one."""
        return cls(client_id, account_id, tid[0], tid[1], 0, 0, 0, 0, 0, 0, retracted=True)


@dataclass(frozen=True, slots=True)
class ConversationRow:
    client_id: str
    account_id: str
    platform: str
    root_id: str
    person_id: str
    person_handle: str
    turns: int
    opened_by: str
    started_at: int
    last_at: int
    retracted: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.platform, self.root_id, self.person_id)

    @classmethod
    def retraction(cls, client_id: str, account_id: str, tid: tuple[str, str], person_id: str) -> ConversationRow:
        """The row that supersedes the conversation of a folded thread (it lives on under the larger root)."""
        return cls(client_id, account_id, tid[0], tid[1], person_id, "", 0, "", 0, 0, retracted=True)


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    client_id: str
    account_id: str
    platform: str
    person_id: str
    person_handle: str
    conversations: int
    turns: int
    first_at: int
    last_at: int
    returning: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.platform, self.person_id)


@dataclass(frozen=True, slots=True)
class ResponseRow:
    client_id: str
    account_id: str
    platform: str
    event_id: str
    author_id: str
    received_at: int
    due_at: int
    answered_at: int | None
    response_s: float | None
    response_business_s: float | None
    status: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.platform, self.event_id)

    @property
    def late(self) -> bool:
        """Answered after the deadline (status stays ``answered``; lateness stays visible)."""
        return self.answered_at is not None and self.answered_at > self.due_at


@dataclass(frozen=True, slots=True)
class AlertRow:
    client_id: str
    account_id: str
    platform: str
    event_id: str
    opened_at: int
    due_at: int
    resolved_at: int | None
    status: str
    text: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.platform, self.event_id)


@dataclass(frozen=True, slots=True)
class Updates:
    """Rows changed by one ``apply`` or ``sweep`` (or, from ``snapshot``, all current rows)."""

    threads: tuple[ThreadRow, ...] = ()
    conversations: tuple[ConversationRow, ...] = ()
    connections: tuple[ConnectionRow, ...] = ()
    responses: tuple[ResponseRow, ...] = ()
    alerts: tuple[AlertRow, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.threads or self.conversations or self.connections or self.responses or self.alerts)


def columns(row_type: type) -> tuple[str, ...]:
    """The column names of a row type, in order."""
    return tuple(f.name for f in fields(row_type))
