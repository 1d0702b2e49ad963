"""Instagram webhooks: comments on the account's media, mentions of it, messages -> rows.

The ``comments`` subscription only fires for comments on the account's *own* media, so a
top-level comment's parent (the media) is authored by the entry's account: that is the one
place where the webhook, not the payload body, names the parent's author. Its thread root
is the media id. Comment payloads carry no time: the delivery's ``entry.time`` is used.
A ``mentions`` change names only the media and comment ids: its author and text are
unknown without a Graph API lookup, which a pure normalizer does not make. The webhook
receiver makes it when it can and adds the answer under ``_completed`` in the change's
value (``{"mentioned_comment": {...}}`` or ``{"mentioned_media": {...}}``, as the Graph API
returned it): then author, handle, text and time come from there.

Fields are read with :mod:`streams.normalize.access` (fast when the payload is as expected,
precise when it is not) and rows are written directly by :class:`~streams.normalize.rows.Rows`.
"""

from __future__ import annotations

import re
from typing import Any

from streams.normalize.access import Where, at, ident, opt_ident, opt_obj, opt_text, time_ms
from streams.normalize.base import BadPayload
from streams.normalize.rows import Rows, kind_of, unique
from streams.normalize.webhook import Entry, messaging, normalize_envelope

PLATFORM = "instagram"
COMMENT_FIELDS = frozenset({"comments", "live_comments"})
# Instagram usernames: letters, digits, dot, underscore; up to 30 characters.
_AT_NAME = re.compile(r"(?<![\w.@])@([A-Za-z0-9._]{1,30})(?![\w])")


def names_in(text: str) -> tuple[str, ...]:
    """Lower-cased ``@username`` mentions: Instagram gives names only, never ids."""
    if "@" not in text:
        return ()
    return unique([n.rstrip(".").lower() for n in _AT_NAME.findall(text)])


def normalize_instagram(payload: Any, rows: Rows) -> None:
    normalize_envelope(payload, "instagram", rows, _on_change)


def _on_change(entry: Entry, field: str, value: dict[str, Any], where: Where, rows: Rows) -> None:
    if field in COMMENT_FIELDS:
        _comment(entry, value, where, rows)
    elif field == "mentions":
        _mention(entry, value, where, rows)
    elif field == "messages":
        messaging(value, where, entry, rows)
    else:
        rows.skip(f"field {field[:40]!r} is not read")


def _comment(entry: Entry, value: dict[str, Any], where: Where, rows: Rows) -> None:
    comment_id = ident(value, "id", where)
    media = opt_obj(value, "media", where)
    media_id = ident(media, "id", (where, "media")) if media is not None else None
    parent_id = opt_ident(value, "parent_id", where)
    if parent_id is None and media_id is None:
        raise BadPayload(f"{at(where, 'media')} missing (a comment needs its media or parent)")
    sender = opt_obj(value, "from", where)
    author_id = ident(sender, "id", (where, "from")) if sender is not None else ""
    handle = opt_text(sender, "username", (where, "from")) if sender is not None else ""
    body = opt_text(value, "text", where)
    mentions = names_in(body)
    ctx = rows.ctx
    rows.interaction(
        ctx.audience((entry.account_id, author_id), mentions), comment_id,
        kind_of(
            dm=False, parent=parent_id or media_id, quoted=None, mentions_tracked=ctx.tracked_names(mentions),
        ),
        author_id, entry.time(value, where, "timestamp"), author_handle=handle, parent_id=parent_id or media_id,
        parent_author_id=None if parent_id else entry.account_id, root_id=media_id, mentioned_ids=mentions,
        text=body,
    )


def _mention(entry: Entry, value: dict[str, Any], where: Where, rows: Rows) -> None:
    """The account was @mentioned in a caption (no comment id) or in a comment."""
    media_id = ident(value, "media_id", where)
    comment_id = opt_ident(value, "comment_id", where)
    parent_id = media_id if comment_id else None
    author_id = handle = body = ""
    created_at = None
    completed = opt_obj(value, "_completed", where)
    if completed is not None:
        completed_where = (where, "_completed")
        key = "mentioned_comment" if comment_id else "mentioned_media"
        found = opt_obj(completed, key, completed_where)
        if found is not None:
            found_where = (completed_where, key)
            sender = opt_obj(found, "from", found_where)
            sender_where = (found_where, "from")
            author_id = (opt_ident(sender, "id", sender_where) if sender is not None else None) or ""
            handle = opt_text(found, "username", found_where) or (
                opt_text(sender, "username", sender_where) if sender is not None else ""
            )
            body = opt_text(found, "text" if comment_id else "caption", found_where)
            if found.get("timestamp") is not None:
                created_at = time_ms(found, "timestamp", found_where)
    rows.interaction(
        rows.ctx.audience((entry.account_id, author_id)), comment_id or media_id,
        kind_of(dm=False, parent=parent_id, quoted=None, mentions_tracked=True), author_id,
        entry.delivery(value, where, "timestamp") if created_at is None else created_at, author_handle=handle,
        parent_id=parent_id, root_id=media_id, mentioned_ids=(entry.account_id,), text=body,
    )
