"""Fast path of the Facebook and Instagram webhook normalizers (and what they share).

Mirrors :mod:`streams.normalize.webhook`, :mod:`~streams.normalize.facebook` and
:mod:`~streams.normalize.instagram` step for step (same rows, same skip reasons); anything
it does not expect raises and the checked modules decide. Keep them in step:
``tests/unit/normalize/test_fast_path.py`` compares them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.normalize.emit import kind_of
from streams.normalize.facebook import POST_ITEMS, QUIET_VERBS, REACTION_ITEMS
from streams.normalize.fast.core import (
    Fallback,
    Key,
    Rows,
    epoch_ms,
    flag,
    ident,
    obj,
    objects,
    opt_ident,
    opt_obj,
    opt_text,
    text,
    time_ms,
)
from streams.normalize.instagram import COMMENT_FIELDS, names_in


class _Entry:
    """``webhook.Entry``: the account an entry belongs to and its delivery time."""

    __slots__ = ("account_id", "delivered_ms")

    def __init__(self, node: dict[str, Any]) -> None:
        self.account_id = ident(node.get("id"))
        delivered = node.get("time")
        self.delivered_ms = epoch_ms(delivered) if delivered is not None else None

    def time(self, value: dict[str, Any], key: str) -> int:
        own = value.get(key)
        if own is not None:
            return time_ms(own)
        if self.delivered_ms is not None:
            return self.delivered_ms
        raise Fallback

    def delivery(self, value: dict[str, Any], key: str) -> int:
        if self.delivered_ms is not None:
            return self.delivered_ms
        return time_ms(value.get(key))  # missing: time_ms refuses None


Handler = Callable[[_Entry, str, dict[str, Any], Rows], None]


def _envelope(payload: Any, expected_object: str, rows: Rows, on_change: Handler) -> None:
    if type(payload) is not dict:
        raise Fallback
    kind = text(payload.get("object"))
    if kind != expected_object:
        rows.skip(f"webhook object {kind[:40]!r} is not read")
        return
    entries = payload.get("entry")
    if type(entries) is not list:
        raise Fallback
    for node in objects(entries):
        entry = _Entry(node)
        for change in objects(node.get("changes")):
            on_change(entry, text(change.get("field")), obj(change.get("value")), rows)
        for event in objects(node.get("messaging")):
            _messaging(event, entry, rows)


def _messaging(event: dict[str, Any], entry: _Entry, rows: Rows) -> None:
    sender = ident(obj(event.get("sender")).get("id"))
    recipient = ident(obj(event.get("recipient")).get("id"))
    person = recipient if sender == entry.account_id else sender
    when = entry.time(event, "timestamp")
    keys = rows.ctx.audience((entry.account_id, sender, recipient))
    if event.get("message_edit") is not None:
        edit = obj(event["message_edit"])
        rows.change(keys, ident(edit.get("mid")), "edit", when, opt_text(edit.get("text")), sender)
        return
    if event.get("message") is None:
        rows.skip("messaging event without a message (read, delivery, reaction, postback)")
        return
    message = obj(event["message"])
    mid = ident(message.get("mid"))
    if flag(message.get("is_deleted")):
        rows.change(keys, mid, "delete", when, "", sender)
        return
    rows.interaction(
        keys, mid, "dm", sender, when, root_id=f"dm:{entry.account_id}:{person}", recipient_id=recipient,
        text=opt_text(message.get("text")),
    )


# Facebook ----------------------------------------------------------------------------
def fast_facebook(payload: Any, rows: Rows) -> None:
    _envelope(payload, "page", rows, _facebook_change)


def _facebook_change(entry: _Entry, field: str, value: dict[str, Any], rows: Rows) -> None:
    if field == "feed":
        _feed(entry, value, rows)
    elif field == "mention":
        _fb_mention(entry, value, rows)
    else:
        rows.skip(f"field {field[:40]!r} is not read")


def _feed(entry: _Entry, value: dict[str, Any], rows: Rows) -> None:
    item = text(value.get("item"))
    verb = text(value.get("verb"))
    sender = opt_obj(value.get("from"))
    author_id, name = ("", "") if sender is None else (ident(sender.get("id")), opt_text(sender.get("name")))
    keys = rows.ctx.audience((entry.account_id, author_id))

    if item in REACTION_ITEMS:
        post_id = opt_ident(value.get("post_id"))
        target = opt_ident(value.get("comment_id")) or post_id
        if target is None:
            raise Fallback
        if not author_id:
            rows.skip("reaction without its actor: it has no id to be recorded under")
            return
        event_id = f"like:{author_id}:{target}"
        if verb == "add":
            rows.interaction(
                keys, event_id, "like", author_id, entry.time(value, "created_time"), author_handle=name,
                parent_id=target,
            )
        elif verb == "remove":
            rows.change(keys, event_id, "delete", entry.delivery(value, "created_time"), "", author_id)
        else:
            rows.skip(f"reaction verb {verb[:20]!r} changes nothing counted")
        return

    parent_id: str | None
    if item == "comment":
        event_id = ident(value.get("comment_id"))
        root_id = ident(value.get("post_id"))
        parent_id = opt_ident(value.get("parent_id")) or root_id
        kind = "reply"
    elif item in POST_ITEMS or item == "share":
        share_id = opt_ident(value.get("share_id")) if item == "share" else None
        event_id = opt_ident(value.get("post_id")) or share_id or ident(value.get("post_id"))
        root_id, parent_id = event_id, None
        kind = "post"
    else:
        rows.skip(f"feed item {item[:40]!r} is not read")
        return

    if verb == "add":
        rows.interaction(
            keys, event_id, kind, author_id, entry.time(value, "created_time"), author_handle=name,
            parent_id=parent_id, root_id=root_id, text=opt_text(value.get("message")),
            url=opt_text(value.get("link")) if item == "share" else "",
        )
    elif verb == "edited" or verb == "remove":
        edited = verb == "edited"
        rows.change(
            keys, event_id, "edit" if edited else "delete", entry.delivery(value, "created_time"),
            opt_text(value.get("message")) if edited else "", author_id,
        )
    elif verb in QUIET_VERBS:
        rows.skip(f"feed verb {verb!r} changes nothing counted")
    else:
        raise Fallback


def _fb_mention(entry: _Entry, value: dict[str, Any], rows: Rows) -> None:
    post_id = ident(value.get("post_id"))
    comment_id = opt_ident(value.get("comment_id")) if opt_text(value.get("item")) == "comment" else None
    author_id = opt_ident(value.get("sender_id")) or ""
    keys = rows.ctx.audience((entry.account_id, author_id))
    event_id = comment_id or post_id
    verb = opt_text(value.get("verb"), "add")
    if verb == "remove":
        rows.change(keys, event_id, "delete", entry.delivery(value, "created_time"), "", author_id)
        return
    if verb != "add":
        rows.skip(f"mention verb {verb[:20]!r} changes nothing counted")
        return
    parent_id = post_id if comment_id else None
    rows.interaction(
        keys, event_id, kind_of(dm=False, parent=parent_id, quoted=None, mentions_tracked=True), author_id,
        entry.time(value, "created_time"), author_handle=opt_text(value.get("sender_name")),
        parent_id=parent_id, root_id=post_id, mentioned_ids=(entry.account_id,),
        text=opt_text(value.get("message")),
    )


# Instagram ---------------------------------------------------------------------------
def fast_instagram(payload: Any, rows: Rows) -> None:
    _envelope(payload, "instagram", rows, _instagram_change)


def _instagram_change(entry: _Entry, field: str, value: dict[str, Any], rows: Rows) -> None:
    if field in COMMENT_FIELDS:
        _ig_comment(entry, value, rows)
    elif field == "mentions":
        _ig_mention(entry, value, rows)
    elif field == "messages":
        _messaging(value, entry, rows)
    else:
        rows.skip(f"field {field[:40]!r} is not read")


def _ig_comment(entry: _Entry, value: dict[str, Any], rows: Rows) -> None:
    comment_id = ident(value.get("id"))
    media = opt_obj(value.get("media"))
    media_id = ident(media.get("id")) if media is not None else None
    parent_id = opt_ident(value.get("parent_id"))
    if parent_id is None and media_id is None:
        raise Fallback
    sender = opt_obj(value.get("from"))
    author_id = ident(sender.get("id")) if sender is not None else ""
    handle = opt_text(sender.get("username")) if sender is not None else ""
    body = opt_text(value.get("text"))
    mentions = names_in(body)
    ctx = rows.ctx
    keys: list[Key] = ctx.audience((entry.account_id, author_id), mentions)
    rows.interaction(
        keys, comment_id,
        kind_of(
            dm=False, parent=parent_id or media_id, quoted=None,
            mentions_tracked=ctx.tracked_names(mentions),
        ),
        author_id, entry.time(value, "timestamp"), author_handle=handle, parent_id=parent_id or media_id,
        parent_author_id=None if parent_id else entry.account_id, root_id=media_id, mentioned_ids=mentions,
        text=body,
    )


def _ig_mention(entry: _Entry, value: dict[str, Any], rows: Rows) -> None:
    media_id = ident(value.get("media_id"))
    comment_id = opt_ident(value.get("comment_id"))
    parent_id = media_id if comment_id else None
    author_id = handle = body = ""
    created_at = None
    completed = opt_obj(value.get("_completed"))
    if completed is not None:
        found = opt_obj(completed.get("mentioned_comment" if comment_id else "mentioned_media"))
        if found is not None:
            sender = opt_obj(found.get("from"))
            author_id = (opt_ident(sender.get("id")) if sender is not None else None) or ""
            handle = opt_text(found.get("username")) or (opt_text(sender.get("username")) if sender is not None else "")
            body = opt_text(found.get("text" if comment_id else "caption"))
            if found.get("timestamp") is not None:
                created_at = time_ms(found["timestamp"])
    rows.interaction(
        rows.ctx.audience((entry.account_id, author_id)), comment_id or media_id,
        kind_of(dm=False, parent=parent_id, quoted=None, mentions_tracked=True), author_id,
        entry.delivery(value, "timestamp") if created_at is None else created_at, author_handle=handle,
        parent_id=parent_id, root_id=media_id, mentioned_ids=(entry.account_id,), text=body,
    )
