"""Reddit: listing things (``t1`` comments, ``t3`` submissions, ``t4`` messages) -> rows.

Reddit names accounts by username, case-insensitively, so author and mention ids are kept
lower-cased (the original spelling stays in ``author_handle``). A comment's payload never
names its parent's author, except when the parent encloses it in the same payload (a
comment's nested ``replies`` listing): then the enclosing author is used. Otherwise a
comment reaches an account through its inbox, a listened subreddit or a mention.

Its fast path, :mod:`streams.normalize.fast.reddit`, must give exactly the same outcome: a change
here needs its twin there (tests/unit/normalize/test_fast_path.py compares the two).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from streams.normalize.access import Node
from streams.normalize.base import AccountIndex, Arrival, BadPayload, Outcome
from streams.normalize.emit import Audience, Collector, Draft, kind_of, tracked_name, unique

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


def _fullname(data: Node, prefix: str) -> str:
    name = data.opt_ident("name") or f"{prefix}{data.ident('id')}"
    if not name.startswith(prefix):
        raise BadPayload(f"{data.at('name')} {name[:40]!r} does not start with {prefix!r}")
    return name


@dataclass(frozen=True, slots=True)
class _Item:
    thing: Node
    parent_author: str | None  # known only from an enclosing comment in the same payload


def normalize_reddit(payload: Any, arrival: Arrival, index: AccountIndex) -> Outcome:
    """One thing (or a Listing); nested reply listings are walked depth-first in order."""
    out = Collector(arrival)
    stack = [_Item(Node.of(payload), None)]
    while stack:
        item = stack.pop()
        thing = item.thing
        kind = thing.text("kind")
        if kind == "Listing":
            stack.extend(_Item(c, item.parent_author) for c in reversed(_children(thing)))
        elif kind == "t1":
            data = thing.obj("data")
            author = _comment(data, item.parent_author, arrival, index, out)
            stack.extend(_Item(c, author or None) for c in reversed(_replies(data)))
        elif kind == "t3":
            _submission(thing.obj("data"), arrival, index, out)
        elif kind == "t4":
            _message(thing.obj("data"), arrival, index, out)
        elif kind != "more":  # "more" is a placeholder for replies not loaded
            out.skip(f"thing kind {kind[:20]!r} is not read")
    return out.outcome()


def _children(listing: Node) -> list[Node]:
    return list(listing.obj("data").objects("children", required=True))


def _replies(data: Node) -> list[Node]:
    replies = data.raw("replies")
    if replies is None or replies == "":
        return []
    listing = Node.of(replies, data.at("replies"))
    return _children(listing)


def _author(data: Node) -> tuple[str, str]:
    """(id, handle): the lower-cased name, and the name as Reddit spells it."""
    name = _person(data.opt_text("author"))
    return name.lower(), name


def _common(
    data: Node, author_id: str, mentions: tuple[str, ...], arrival: Arrival, index: AccountIndex,
) -> Audience:
    subreddit = data.opt_text("subreddit")
    return (
        Audience(PLATFORM, index)
        .names(author_id, *mentions)
        .listened(f"r/{subreddit}" if subreddit else None)
        .arrival(arrival)
    )


def _changes(
    data: Node, event_id: str, author_id: str, text: str, gone: bool, audience: Audience,
    out: Collector,
) -> None:
    """A listing is a snapshot: an ``edited`` time or a deleted body is all we learn of
    an edit or delete, so each becomes a change (never an overwrite of the original)."""
    edited = data.raw("edited")
    if isinstance(edited, int | float) and not isinstance(edited, bool) and edited:
        out.change(
            platform=PLATFORM, event_id=event_id, change="edit",
            changed_at=data.epoch_ms("edited", "s"), text=text, author_id=author_id,
            audience=audience,
        )
    if gone:
        # Reddit does not say when; the time we saw it gone is the best bound we have.
        out.change(
            platform=PLATFORM, event_id=event_id, change="delete",
            changed_at=out.arrival.received_at, text="", author_id=author_id,
            audience=audience,
        )


def _comment(
    data: Node, parent_author: str | None, arrival: Arrival, index: AccountIndex,
    out: Collector,
) -> str:
    name = _fullname(data, "t1_")
    author_id, handle = _author(data)
    body = data.text("body")
    parent_id = data.ident("parent_id")
    if not parent_id.startswith(("t1_", "t3_")):
        raise BadPayload(f"{data.at('parent_id')} {parent_id[:40]!r} is not a t1_/t3_ fullname")
    root_id = data.opt_ident("link_id")
    link = data.opt_text("permalink") or data.opt_text("context")
    if root_id is None:
        # Inbox comments carry no link_id; their context path names the submission.
        found = _SUBMISSION.search(data.opt_text("context"))
        if found:
            root_id = f"t3_{found.group(1)}"
        elif parent_id.startswith("t3_"):
            root_id = parent_id
    mentions = mentions_in(body)
    audience = _common(data, author_id, mentions, arrival, index).names(parent_author)
    draft = Draft(
        platform=PLATFORM,
        event_id=name,
        kind=kind_of(
            dm=False, parent=parent_id, quoted=None,
            mentions_tracked=any(tracked_name(index, PLATFORM, m) for m in mentions),
        ),
        author_id=author_id,
        author_handle=handle,
        created_at=data.epoch_ms("created_utc", "s"),
        parent_id=parent_id,
        parent_author_id=parent_author,
        root_id=root_id,
        mentioned_ids=mentions,
        text=body,
        url=f"{SITE}{link}" if link.startswith("/") else link,
    )
    out.interaction(draft, audience)
    _changes(data, name, author_id, body, body in GONE_BODIES, audience, out)
    return author_id


def _submission(data: Node, arrival: Arrival, index: AccountIndex, out: Collector) -> None:
    name = _fullname(data, "t3_")
    author_id, handle = _author(data)
    title = data.text("title")
    selftext = data.opt_text("selftext")
    text = f"{title}\n\n{selftext}" if selftext else title
    quoted_id = data.opt_ident("crosspost_parent")
    quoted_author = None
    if quoted_id is not None:
        originals = list(data.objects("crosspost_parent_list"))
        if originals:
            quoted_author = _person(originals[0].opt_text("author")).lower() or None
    mentions = mentions_in(text)
    audience = _common(data, author_id, mentions, arrival, index).names(quoted_author)
    link = data.opt_text("permalink")
    draft = Draft(
        platform=PLATFORM,
        event_id=name,
        kind=kind_of(
            dm=False, parent=None, quoted=quoted_id,
            mentions_tracked=any(tracked_name(index, PLATFORM, m) for m in mentions),
        ),
        author_id=author_id,
        author_handle=handle,
        created_at=data.epoch_ms("created_utc", "s"),
        root_id=name,  # a submission is the root of its own thread
        quoted_id=quoted_id,
        quoted_author_id=quoted_author,
        mentioned_ids=mentions,
        text=text,
        url=f"{SITE}{link}" if link.startswith("/") else link,
    )
    out.interaction(draft, audience)
    _changes(data, name, author_id, text, selftext in GONE_BODIES, audience, out)


def _message(data: Node, arrival: Arrival, index: AccountIndex, out: Collector) -> None:
    """A private message; its conversation is named by ``first_message_name``."""
    name = _fullname(data, "t4_")
    author_id, handle = _author(data)
    recipient = _person(data.opt_text("dest")).lower() or None
    body = data.text("body")
    mentions = mentions_in(body)
    audience = _common(data, author_id, mentions, arrival, index).names(recipient)
    draft = Draft(
        platform=PLATFORM,
        event_id=name,
        kind="dm",
        author_id=author_id,
        author_handle=handle,
        created_at=data.epoch_ms("created_utc", "s"),
        parent_id=data.opt_ident("parent_id"),
        root_id=data.opt_ident("first_message_name") or name,
        recipient_id=recipient,
        mentioned_ids=mentions,
        text=body,
    )
    out.interaction(draft, audience)
