"""What Facebook Page and Instagram webhooks share: the envelope, its time, and messaging.

Both deliver ``{"object", "entry": [{"id", "time", "changes" | "messaging"}]}`` where the
entry ``id`` is the Page or Instagram account the subscription belongs to, so every event
in an entry concerns that account. ``entry.time`` is the delivery time, in seconds for
Facebook and, in some Instagram deliveries, milliseconds: it is told apart by size.

Fields are read with :mod:`streams.normalize.access` (fast when the payload is as expected,
precise when it is not) and rows are written directly by :class:`~streams.normalize.rows.Rows`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.normalize.access import (
    Where,
    at,
    epoch_ms,
    flag,
    ident,
    obj,
    objects,
    of,
    opt_text,
    text,
    time_ms,
)
from streams.normalize.base import BadPayload
from streams.normalize.rows import Rows


class Entry:
    """One webhook entry: the account it belongs to and its delivery time."""

    __slots__ = ("where", "account_id", "delivered_ms")

    def __init__(self, node: dict[str, Any], where: Where) -> None:
        self.where = where
        self.account_id = ident(node, "id", where)
        self.delivered_ms = epoch_ms(node, "time", where) if node.get("time") is not None else None

    def time(self, value: dict[str, Any], where: Where, key: str) -> int:
        """The object's own time when given, else the delivery's."""
        if value.get(key) is not None:
            return time_ms(value, key, where)
        return self.delivery(value, where, key)

    def delivery(self, value: dict[str, Any], where: Where, key: str) -> int:
        """The delivery time, else the object's own time (for changes: when it happened)."""
        if self.delivered_ms is not None:
            return self.delivered_ms
        if value.get(key) is not None:
            return time_ms(value, key, where)
        raise BadPayload(f"{at(where, key)} and {at(self.where, 'time')} missing")


ChangeHandler = Callable[[Entry, str, dict[str, Any], Where, Rows], None]


def normalize_envelope(payload: Any, expected_object: str, rows: Rows, on_change: ChangeHandler) -> None:
    top = of(payload)
    kind = text(top, "object")
    if kind != expected_object:
        rows.skip(f"webhook object {kind[:40]!r} is not read")
        return
    for i, node in enumerate(objects(top, "entry", "", required=True)):
        where = ("entry", i)
        entry = Entry(node, where)
        for j, change in enumerate(objects(node, "changes", where)):
            change_where = ((where, "changes"), j)
            field = text(change, "field", change_where)
            on_change(entry, field, obj(change, "value", change_where), (change_where, "value"), rows)
        for j, event in enumerate(objects(node, "messaging", where)):
            messaging(event, ((where, "messaging"), j), entry, rows)


def messaging(event: dict[str, Any], where: Where, entry: Entry, rows: Rows) -> None:
    """A Messenger-platform event (Page or Instagram DM). No conversation id is given, so
    the conversation is the pair account-person, as the README says for that case."""
    sender = ident(obj(event, "sender", where), "id", (where, "sender"))
    recipient = ident(obj(event, "recipient", where), "id", (where, "recipient"))
    person = recipient if sender == entry.account_id else sender
    when = entry.time(event, where, "timestamp")
    keys = rows.ctx.audience((entry.account_id, sender, recipient))  # everything in an entry concerns its account
    if event.get("message_edit") is not None:
        edit = obj(event, "message_edit", where)
        edit_where = (where, "message_edit")
        rows.change(keys, ident(edit, "mid", edit_where), "edit", when, opt_text(edit, "text", edit_where), sender)
        return
    if event.get("message") is None:
        rows.skip("messaging event without a message (read, delivery, reaction, postback)")
        return
    message = obj(event, "message", where)
    message_where = (where, "message")
    mid = ident(message, "mid", message_where)
    if flag(message, "is_deleted", message_where):
        rows.change(keys, mid, "delete", when, "", sender)
        return
    rows.interaction(
        keys, mid, "dm", sender, when, root_id=f"dm:{entry.account_id}:{person}", recipient_id=recipient,
        text=opt_text(message, "text", message_where),
    )
