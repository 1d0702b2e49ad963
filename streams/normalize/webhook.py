"""What Facebook Page and Instagram webhooks share: the envelope, its time, and messaging.

Both deliver ``{"object", "entry": [{"id", "time", "changes" | "messaging"}]}`` where the
entry ``id`` is the Page or Instagram account the subscription belongs to, so every event
in an entry concerns that account. ``entry.time`` is the delivery time, in seconds for
Facebook and, in some Instagram deliveries, milliseconds: it is told apart by size.

Its fast path, :mod:`streams.normalize.fast.webhooks`, must give exactly the same outcome: a change
here needs its twin there (tests/unit/normalize/test_fast_path.py compares the two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from streams.normalize.access import Node
from streams.normalize.base import AccountIndex, Arrival, BadPayload, Outcome, Skipped
from streams.normalize.emit import Audience, Collector, Draft


class Entry:
    """One webhook entry: the account it belongs to and its delivery time."""

    __slots__ = ("node", "account_id", "delivered_ms")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.account_id = node.ident("id")
        self.delivered_ms = node.epoch_ms("time") if node.has("time") else None

    def time(self, value: Node, key: str) -> int:
        """The object's own time when given, else the delivery's."""
        if value.has(key):
            return value.time_ms(key)
        return self.delivery(value, key)

    def delivery(self, value: Node, key: str) -> int:
        """The delivery time, else the object's own time (for changes: when it happened)."""
        if self.delivered_ms is not None:
            return self.delivered_ms
        if value.has(key):
            return value.time_ms(key)
        raise BadPayload(f"{value.at(key)} and {self.node.at('time')} missing")


ChangeHandler = Callable[[Entry, str, Node, Collector], None]


def normalize_envelope(
    payload: Any, expected_object: str, arrival: Arrival, on_change: ChangeHandler,
    platform: str, index: AccountIndex,
) -> Outcome:
    top = Node.of(payload)
    obj = top.text("object")
    if obj != expected_object:
        return Skipped(f"webhook object {obj[:40]!r} is not read")
    out = Collector(arrival)
    for entry in entries(top):
        for change in entry.node.objects("changes"):
            on_change(entry, change.text("field"), change.obj("value"), out)
        for event in entry.node.objects("messaging"):
            messaging(event, entry, platform, arrival, index, out)
    return out.outcome()


def entries(top: Node) -> Iterator[Entry]:
    for node in top.objects("entry", required=True):
        yield Entry(node)


def audience(platform: str, index: AccountIndex, entry: Entry, arrival: Arrival) -> Audience:
    """Everything in an entry concerns the entry's account (its Page or IG webhook)."""
    return Audience(platform, index).ids(entry.account_id).arrival(arrival)


def messaging(
    event: Node, entry: Entry, platform: str, arrival: Arrival, index: AccountIndex,
    out: Collector,
) -> None:
    """A Messenger-platform event (Page or Instagram DM). No conversation id is given, so
    the conversation is the pair account-person, as the README says for that case."""
    sender = event.obj("sender").ident("id")
    recipient = event.obj("recipient").ident("id")
    person = recipient if sender == entry.account_id else sender
    when = entry.time(event, "timestamp")
    who = audience(platform, index, entry, arrival).ids(sender, recipient)
    if event.has("message_edit"):
        edit = event.obj("message_edit")
        out.change(
            platform=platform, event_id=edit.ident("mid"), change="edit", changed_at=when,
            text=edit.opt_text("text"), author_id=sender, audience=who,
        )
        return
    if not event.has("message"):
        out.skip("messaging event without a message (read, delivery, reaction, postback)")
        return
    message = event.obj("message")
    mid = message.ident("mid")
    if message.flag("is_deleted"):
        out.change(
            platform=platform, event_id=mid, change="delete", changed_at=when, text="",
            author_id=sender, audience=who,
        )
        return
    draft = Draft(
        platform=platform, event_id=mid, kind="dm", author_id=sender, created_at=when,
        root_id=f"dm:{entry.account_id}:{person}", recipient_id=recipient,
        text=message.opt_text("text"),
    )
    out.interaction(draft, who)
