"""Reddit: listing things (``t1`` comments, ``t3`` submissions, ``t4`` messages) -> rows.

Reddit names accounts by username, case-insensitively, so author and mention ids are kept
lower-cased (the original spelling stays in ``author_handle``). A comment's payload never
names its parent's author, except when the parent encloses it in the same payload (a
comment's nested ``replies`` listing): then the enclosing author is used. Otherwise a
comment reaches an account through its inbox, a listened subreddit or a mention.

Fields are read with :mod:`streams.normalize.access` (fast when the payload is as expected,
precise when it is not) and rows are written directly by :class:`~streams.normalize.rows.Rows`.
"""

from __future__ import annotations

import re
from typing import Any

from streams.normalize.access import (
    Where,
    at,
    epoch_ms,
    ident,
    obj,
    objects,
    of,
    opt_ident,
    opt_text,
    text,
)
from streams.normalize.base import BadPayload
from streams.normalize.rows import Key, Rows, kind_of, unique

PLATFORM = "reddit"
SITE = "https://www.reddit.com"
UNKNOWN_AUTHORS = frozenset({"", "[deleted]"})
GONE_BODIES = frozenset({"[deleted]", "[removed]"})

# A markdown link target "](...)", and bare or <angle> URLs: mentions inside them are
# parts of addresses, not words of their own.
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_URL = re.compile(r"<[A-Za-z][\w+.-]*:[^>\s]*>|\b(?:https?://|www\.)\S+", re.IGNORECASE)
# u/name or /u/name standing alone: not preceded by a word character or another slash
# (which would make it part of a path), not followed by more name characters.
_MENTION = re.compile(r"(?<![\w/])/?u/([A-Za-z0-9_-]{3,20})(?![\w-])", re.IGNORECASE)
_SUBMISSION = re.compile(r"/comments/([A-Za-z0-9]+)(?:[/?#]|$)")


def mentions_in(text: str) -> tuple[str, ...]:
    """Lower-cased names of ``u/name`` mentions standing as words of their own."""
    if "u/" not in text and "U/" not in text:
        return ()
    plain = text.replace("\\_", "_")  # the rich-text editor escapes underscores
    plain = _LINK_TARGET.sub(" ", plain)
    plain = _URL.sub(" ", plain)
    return unique([m.lower() for m in _MENTION.findall(plain)])


def _person(name: str) -> str:
    return "" if name in UNKNOWN_AUTHORS else name


def _fullname(data: dict[str, Any], where: Where, prefix: str) -> str:
    name = opt_ident(data, "name", where) or f"{prefix}{ident(data, 'id', where)}"
    if not name.startswith(prefix):
        raise BadPayload(f"{at(where, 'name')} {name[:40]!r} does not start with {prefix!r}")
    return name


# A thing to read, where it sits, and its parent's author when an enclosing comment in the
# same payload names it.
_Item = tuple[dict[str, Any], Where, str | None]


def normalize_reddit(payload: Any, rows: Rows) -> None:
    """One thing (or a Listing); nested reply listings are walked depth-first in order."""
    stack: list[_Item] = []
    thing: dict[str, Any] = of(payload)
    where: Where = ""
    parent_author: str | None = None
    while True:
        kind = text(thing, "kind", where)
        if kind == "t1":
            data_where = (where, "data")
            data = obj(thing, "data", where)
            author = _comment(data, data_where, parent_author, rows)
            replies = data.get("replies")
            if replies is not None and replies != "":
                listing_where = (data_where, "replies")
                stack.extend(reversed(_children(of(replies, listing_where), listing_where, author or None)))
        elif kind == "t3":
            _submission(obj(thing, "data", where), (where, "data"), rows)
        elif kind == "t4":
            _message(obj(thing, "data", where), (where, "data"), rows)
        elif kind == "Listing":
            stack.extend(reversed(_children(thing, where, parent_author)))
        elif kind != "more":  # "more" is a placeholder for replies not loaded
            rows.skip(f"thing kind {kind[:20]!r} is not read")
        if not stack:
            return
        thing, where, parent_author = stack.pop()


def _children(listing: dict[str, Any], where: Where, parent_author: str | None) -> list[_Item]:
    data_where = (where, "data")
    children_where = (data_where, "children")
    children = objects(obj(listing, "data", where), "children", data_where, required=True)
    return [(child, (children_where, i), parent_author) for i, child in enumerate(children)]


def _author(data: dict[str, Any], where: Where) -> tuple[str, str]:
    """(id, handle): the lower-cased name, and the name as Reddit spells it."""
    name = _person(opt_text(data, "author", where))
    return name.lower(), name


def _keys(data: dict[str, Any], where: Where, rows: Rows, names: tuple[str | None, ...]) -> list[Key]:
    """The accounts named (author, mentions, ...), the subreddit listened to, the arrival."""
    subreddit = opt_text(data, "subreddit", where)
    return rows.ctx.audience((), names, (f"r/{subreddit}" if subreddit else None,))


def _changes(
    data: dict[str, Any], where: Where, event_id: str, author_id: str, body: str, gone: bool, keys: list[Key],
    rows: Rows,
) -> None:
    """A listing is a snapshot: an ``edited`` time or a deleted body is all we learn of
    an edit or delete, so each becomes a change (never an overwrite of the original)."""
    edited = data.get("edited")
    if isinstance(edited, int | float) and not isinstance(edited, bool) and edited:
        rows.change(keys, event_id, "edit", epoch_ms(data, "edited", where, "s"), body, author_id)
    if gone:
        # Reddit does not say when; the time we saw it gone is the best bound we have.
        rows.change(keys, event_id, "delete", rows.ctx.received_at, "", author_id)


def _url(link: str) -> str:
    return f"{SITE}{link}" if link.startswith("/") else link


def _comment(data: dict[str, Any], where: Where, parent_author: str | None, rows: Rows) -> str:
    name = _fullname(data, where, "t1_")
    author_id, handle = _author(data, where)
    body = text(data, "body", where)
    parent_id = ident(data, "parent_id", where)
    if not parent_id.startswith(("t1_", "t3_")):
        raise BadPayload(f"{at(where, 'parent_id')} {parent_id[:40]!r} is not a t1_/t3_ fullname")
    root_id = opt_ident(data, "link_id", where)
    link = opt_text(data, "permalink", where) or opt_text(data, "context", where)
    if root_id is None:
        # Inbox comments carry no link_id; their context path names the submission.
        found = _SUBMISSION.search(opt_text(data, "context", where))
        if found:
            root_id = f"t3_{found.group(1)}"
        elif parent_id.startswith("t3_"):
            root_id = parent_id
    mentions = mentions_in(body)
    keys = _keys(data, where, rows, (author_id, *mentions, parent_author))
    rows.interaction(
        keys, name,
        kind_of(dm=False, parent=parent_id, quoted=None, mentions_tracked=rows.ctx.tracked_names(mentions)),
        author_id, epoch_ms(data, "created_utc", where, "s"), author_handle=handle, parent_id=parent_id,
        parent_author_id=parent_author, root_id=root_id, mentioned_ids=mentions, text=body, url=_url(link),
    )
    _changes(data, where, name, author_id, body, body in GONE_BODIES, keys, rows)
    return author_id


def _submission(data: dict[str, Any], where: Where, rows: Rows) -> None:
    name = _fullname(data, where, "t3_")
    author_id, handle = _author(data, where)
    title = text(data, "title", where)
    selftext = opt_text(data, "selftext", where)
    body = f"{title}\n\n{selftext}" if selftext else title
    quoted_id = opt_ident(data, "crosspost_parent", where)
    quoted_author = None
    if quoted_id is not None:
        originals = list(objects(data, "crosspost_parent_list", where))
        if originals:
            quoted_author = _author(originals[0], ((where, "crosspost_parent_list"), 0))[0] or None
    mentions = mentions_in(body)
    keys = _keys(data, where, rows, (author_id, *mentions, quoted_author))
    link = opt_text(data, "permalink", where)
    rows.interaction(
        keys, name,
        kind_of(dm=False, parent=None, quoted=quoted_id, mentions_tracked=rows.ctx.tracked_names(mentions)),
        author_id, epoch_ms(data, "created_utc", where, "s"), author_handle=handle,
        root_id=name,  # a submission is the root of its own thread
        quoted_id=quoted_id, quoted_author_id=quoted_author, mentioned_ids=mentions, text=body, url=_url(link),
    )
    _changes(data, where, name, author_id, body, selftext in GONE_BODIES, keys, rows)


def _message(data: dict[str, Any], where: Where, rows: Rows) -> None:
    """A private message; its conversation is named by ``first_message_name``."""
    name = _fullname(data, where, "t4_")
    author_id, handle = _author(data, where)
    recipient = _person(opt_text(data, "dest", where)).lower() or None
    body = text(data, "body", where)
    mentions = mentions_in(body)
    keys = _keys(data, where, rows, (author_id, *mentions, recipient))
    rows.interaction(
        keys, name, "dm", author_id, epoch_ms(data, "created_utc", where, "s"), author_handle=handle,
        parent_id=opt_ident(data, "parent_id", where),
        root_id=opt_ident(data, "first_message_name", where) or name,
        recipient_id=recipient, mentioned_ids=mentions, text=body,
    )
