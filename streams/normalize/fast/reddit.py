"""Fast path of :mod:`streams.normalize.reddit`: one thing read with plain dict access.

Only a single comment, submission or message (what streams and inboxes deliver); a Listing
or a comment carrying nested replies goes to the checked module, which walks them. Mirrors
the checked module step for step; anything it does not expect raises and the checked module
decides. Keep the two in step: ``tests/unit/normalize/test_fast_path.py`` compares them.
"""

from __future__ import annotations

from typing import Any

from streams.normalize.emit import kind_of
from streams.normalize.fast.core import (
    Fallback,
    Key,
    Rows,
    epoch_ms,
    ident,
    obj,
    objects,
    opt_ident,
    opt_text,
    text,
)
from streams.normalize.reddit import _SUBMISSION, GONE_BODIES, SITE, UNKNOWN_AUTHORS, mentions_in


def fast_reddit(payload: Any, rows: Rows) -> None:
    if type(payload) is not dict:
        raise Fallback
    kind = payload.get("kind")
    if kind == "t1":
        _comment(obj(payload.get("data")), rows)
    elif kind == "t3":
        _submission(obj(payload.get("data")), rows)
    elif kind == "t4":
        _message(obj(payload.get("data")), rows)
    else:
        raise Fallback


def _fullname(data: dict[str, Any], prefix: str) -> str:
    name = opt_ident(data.get("name")) or f"{prefix}{ident(data.get('id'))}"
    if not name.startswith(prefix):
        raise Fallback
    return name


def _author(data: dict[str, Any]) -> tuple[str, str]:
    name = opt_text(data.get("author"))
    if name in UNKNOWN_AUTHORS:
        name = ""
    return name.lower(), name


def _keys(
    data: dict[str, Any], author_id: str, mentions: tuple[str, ...], rows: Rows, extra: str | None,
) -> list[Key]:
    """``_common(...).names(extra)``: author, mentions, the subreddit listened to, arrival."""
    subreddit = opt_text(data.get("subreddit"))
    return rows.ctx.audience((), (author_id, *mentions, extra), (f"r/{subreddit}" if subreddit else None,))


def _changes(
    data: dict[str, Any], event_id: str, author_id: str, body: str, gone: bool, keys: list[Key], rows: Rows,
) -> None:
    edited = data.get("edited")
    if isinstance(edited, int | float) and not isinstance(edited, bool) and edited:
        rows.change(keys, event_id, "edit", epoch_ms(edited, "s"), body, author_id)
    if gone:
        rows.change(keys, event_id, "delete", rows.ctx.received_at, "", author_id)


def _url(link: str) -> str:
    return f"{SITE}{link}" if link.startswith("/") else link


def _comment(data: dict[str, Any], rows: Rows) -> None:
    replies = data.get("replies")
    if replies is not None and replies != "":
        raise Fallback  # nested replies: the checked path walks them
    name = _fullname(data, "t1_")
    author_id, handle = _author(data)
    body = text(data.get("body"))
    parent_id = ident(data.get("parent_id"))
    if not parent_id.startswith(("t1_", "t3_")):
        raise Fallback
    root_id = opt_ident(data.get("link_id"))
    link = opt_text(data.get("permalink")) or opt_text(data.get("context"))
    if root_id is None:
        found = _SUBMISSION.search(opt_text(data.get("context")))
        if found:
            root_id = f"t3_{found.group(1)}"
        elif parent_id.startswith("t3_"):
            root_id = parent_id
    mentions = mentions_in(body)
    keys = _keys(data, author_id, mentions, rows, None)
    ctx = rows.ctx
    rows.interaction(
        keys, name,
        kind_of(dm=False, parent=parent_id, quoted=None, mentions_tracked=ctx.tracked_names(mentions)),
        author_id, epoch_ms(data.get("created_utc"), "s"), author_handle=handle, parent_id=parent_id,
        root_id=root_id, mentioned_ids=mentions, text=body, url=_url(link),
    )
    _changes(data, name, author_id, body, body in GONE_BODIES, keys, rows)


def _submission(data: dict[str, Any], rows: Rows) -> None:
    name = _fullname(data, "t3_")
    author_id, handle = _author(data)
    title = text(data.get("title"))
    selftext = opt_text(data.get("selftext"))
    body = f"{title}\n\n{selftext}" if selftext else title
    quoted_id = opt_ident(data.get("crosspost_parent"))
    quoted_author = None
    if quoted_id is not None:
        originals = objects(data.get("crosspost_parent_list"))
        if originals:
            quoted_author, _ = _author(originals[0])
            quoted_author = quoted_author or None
    mentions = mentions_in(body)
    keys = _keys(data, author_id, mentions, rows, quoted_author)
    ctx = rows.ctx
    rows.interaction(
        keys, name,
        kind_of(dm=False, parent=None, quoted=quoted_id, mentions_tracked=ctx.tracked_names(mentions)),
        author_id, epoch_ms(data.get("created_utc"), "s"), author_handle=handle, root_id=name,
        quoted_id=quoted_id, quoted_author_id=quoted_author, mentioned_ids=mentions, text=body,
        url=_url(opt_text(data.get("permalink"))),
    )
    _changes(data, name, author_id, body, selftext in GONE_BODIES, keys, rows)


def _message(data: dict[str, Any], rows: Rows) -> None:
    name = _fullname(data, "t4_")
    author_id, handle = _author(data)
    recipient, _ = _author({"author": data.get("dest")})
    body = text(data.get("body"))
    mentions = mentions_in(body)
    keys = _keys(data, author_id, mentions, rows, recipient or None)
    rows.interaction(
        keys, name, "dm", author_id, epoch_ms(data.get("created_utc"), "s"), author_handle=handle,
        parent_id=opt_ident(data.get("parent_id")),
        root_id=opt_ident(data.get("first_message_name")) or name,
        recipient_id=recipient or None, mentioned_ids=mentions, text=body,
    )
