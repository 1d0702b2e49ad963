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

Its fast path, :mod:`streams.normalize.fast.webhooks`, must give exactly the same outcome: a change
here needs its twin there (tests/unit/normalize/test_fast_path.py compares the two).
"""

from __future__ import annotations

import re
from typing import Any

from streams.normalize.access import Node
from streams.normalize.base import AccountIndex, Arrival, BadPayload, Outcome
from streams.normalize.emit import Collector, Draft, kind_of, tracked_name, unique
from streams.normalize.webhook import Entry, audience, messaging, normalize_envelope

PLATFORM = "instagram"
COMMENT_FIELDS = frozenset({"comments", "live_comments"})
# Instagram usernames: letters, digits, dot, underscore; up to 30 characters.
_AT_NAME = re.compile(r"(?<![\w.@])@([A-Za-z0-9._]{1,30})(?![\w])")


def names_in(text: str) -> tuple[str, ...]:
    """Lower-cased ``@username`` mentions: Instagram gives names only, never ids."""
    if "@" not in text:
        return ()
    return unique([n.rstrip(".").lower() for n in _AT_NAME.findall(text)])


def normalize_instagram(payload: Any, arrival: Arrival, index: AccountIndex) -> Outcome:
    def on_change(entry: Entry, field: str, value: Node, out: Collector) -> None:
        if field in COMMENT_FIELDS:
            _comment(entry, value, arrival, index, out)
        elif field == "mentions":
            _mention(entry, value, arrival, index, out)
        elif field == "messages":
            messaging(value, entry, PLATFORM, arrival, index, out)
        else:
            out.skip(f"field {field[:40]!r} is not read")

    return normalize_envelope(payload, "instagram", arrival, on_change, PLATFORM, index)


def _comment(
    entry: Entry, value: Node, arrival: Arrival, index: AccountIndex, out: Collector,
) -> None:
    comment_id = value.ident("id")
    media = value.opt_obj("media")
    media_id = media.ident("id") if media is not None else None
    parent_id = value.opt_ident("parent_id")
    if parent_id is None and media_id is None:
        raise BadPayload(f"{value.at('media')} missing (a comment needs its media or parent)")
    sender = value.opt_obj("from")
    author_id = sender.ident("id") if sender is not None else ""
    handle = sender.opt_text("username") if sender is not None else ""
    text = value.opt_text("text")
    mentions = names_in(text)
    draft = Draft(
        platform=PLATFORM,
        event_id=comment_id,
        kind=kind_of(
            dm=False, parent=parent_id or media_id, quoted=None,
            mentions_tracked=any(tracked_name(index, PLATFORM, m) for m in mentions),
        ),
        author_id=author_id,
        author_handle=handle,
        created_at=entry.time(value, "timestamp"),
        parent_id=parent_id or media_id,
        parent_author_id=None if parent_id else entry.account_id,
        root_id=media_id,
        mentioned_ids=mentions,
        text=text,
    )
    who = audience(PLATFORM, index, entry, arrival).ids(author_id).names(*mentions)
    out.interaction(draft, who)


def _mention(
    entry: Entry, value: Node, arrival: Arrival, index: AccountIndex, out: Collector,
) -> None:
    """The account was @mentioned in a caption (no comment id) or in a comment."""
    media_id = value.ident("media_id")
    comment_id = value.opt_ident("comment_id")
    parent_id = media_id if comment_id else None
    author_id = handle = text = ""
    created_at = None
    completed = value.opt_obj("_completed")
    if completed is not None:
        found = completed.opt_obj("mentioned_comment" if comment_id else "mentioned_media")
        if found is not None:
            sender = found.opt_obj("from")
            author_id = (sender.opt_ident("id") if sender is not None else None) or ""
            handle = found.opt_text("username") or (sender.opt_text("username") if sender is not None else "")
            text = found.opt_text("text" if comment_id else "caption")
            if found.has("timestamp"):
                created_at = found.time_ms("timestamp")
    draft = Draft(
        platform=PLATFORM,
        event_id=comment_id or media_id,
        kind=kind_of(dm=False, parent=parent_id, quoted=None, mentions_tracked=True),
        author_id=author_id,
        author_handle=handle,
        created_at=entry.delivery(value, "timestamp") if created_at is None else created_at,
        parent_id=parent_id,
        root_id=media_id,
        mentioned_ids=(entry.account_id,),
        text=text,
    )
    out.interaction(draft, audience(PLATFORM, index, entry, arrival).ids(author_id))
