"""Facebook Page webhooks: feed changes (posts, comments, reactions, shares), Page
mentions and Messenger messages -> rows.

Every change arrives through the Page's own subscription (the entry ``id``), so it
concerns that Page whoever wrote it. Verbs: ``add`` is a new interaction, ``edited`` an
edit and ``remove`` a delete (changes, never overwrites). A reaction has no id of its own:
it is ``like:<actor>:<target>`` whatever its type (love, haha, ...), so removing it names
the same row.

Its fast path, :mod:`streams.normalize.fast.webhooks`, must give exactly the same outcome: a change
here needs its twin there (tests/unit/normalize/test_fast_path.py compares the two).
"""

from __future__ import annotations

from typing import Any

from streams.normalize.access import Node
from streams.normalize.base import AccountIndex, Arrival, BadPayload, Outcome
from streams.normalize.emit import Collector, Draft, kind_of
from streams.normalize.webhook import Entry, audience, normalize_envelope

PLATFORM = "facebook"
POST_ITEMS = frozenset({"post", "status", "photo", "video", "note", "event", "album", "link"})
REACTION_ITEMS = frozenset({"reaction", "like"})
QUIET_VERBS = frozenset({"hide", "unhide", "block", "unblock", "edit_reaction"})


def normalize_facebook(payload: Any, arrival: Arrival, index: AccountIndex) -> Outcome:
    def on_change(entry: Entry, field: str, value: Node, out: Collector) -> None:
        if field == "feed":
            _feed(entry, value, arrival, index, out)
        elif field == "mention":
            _mention(entry, value, arrival, index, out)
        else:
            out.skip(f"field {field[:40]!r} is not read")

    return normalize_envelope(payload, "page", arrival, on_change, PLATFORM, index)


def _author(value: Node) -> tuple[str, str]:
    """Facebook omits ``from`` for people who keep it private: the author is unknown."""
    sender = value.opt_obj("from")
    if sender is None:
        return "", ""
    return sender.ident("id"), sender.opt_text("name")


def _feed(entry: Entry, value: Node, arrival: Arrival, index: AccountIndex, out: Collector) -> None:
    item = value.text("item")
    verb = value.text("verb")
    author_id, name = _author(value)
    who = audience(PLATFORM, index, entry, arrival).ids(author_id)

    if item in REACTION_ITEMS:
        post_id = value.opt_ident("post_id")
        target = value.opt_ident("comment_id") or post_id
        if target is None:
            raise BadPayload(f"{value.at('post_id')} missing")
        if not author_id:
            out.skip("reaction without its actor: it has no id to be recorded under")
            return
        event_id = f"like:{author_id}:{target}"
        if verb == "add":
            out.interaction(
                Draft(
                    platform=PLATFORM, event_id=event_id, kind="like", author_id=author_id,
                    author_handle=name, created_at=entry.time(value, "created_time"),
                    parent_id=target,  # signals belong to no thread: no root
                ),
                who,
            )
        elif verb == "remove":
            out.change(
                platform=PLATFORM, event_id=event_id, change="delete",
                changed_at=entry.delivery(value, "created_time"), text="",
                author_id=author_id, audience=who,
            )
        else:  # "edit": the reaction type changed, it is still the same like
            out.skip(f"reaction verb {verb[:20]!r} changes nothing counted")
        return

    if item == "comment":
        event_id = value.ident("comment_id")
        root_id = value.ident("post_id")
        parent_id = value.opt_ident("parent_id") or root_id
        kind = "reply"  # a comment always has a parent: the post or another comment
    elif item in POST_ITEMS or item == "share":
        # A share in the Page's feed is a post of its own (with its own id), not a repost
        # of one of the Page's posts: the payload does not say what was shared.
        # Comments name the feed post by post_id, so that is the id; share_id is a fallback.
        share_id = value.opt_ident("share_id") if item == "share" else None
        event_id = value.opt_ident("post_id") or share_id or value.ident("post_id")
        root_id, parent_id = event_id, None
        kind = "post"
    else:
        out.skip(f"feed item {item[:40]!r} is not read")
        return

    if verb == "add":
        draft = Draft(
            platform=PLATFORM, event_id=event_id, kind=kind, author_id=author_id,
            author_handle=name, created_at=entry.time(value, "created_time"),
            parent_id=parent_id, root_id=root_id, text=value.opt_text("message"),
            url=value.opt_text("link") if item == "share" else "",
        )
        out.interaction(draft, who)
    elif verb in ("edited", "remove"):
        out.change(
            platform=PLATFORM, event_id=event_id,
            change="edit" if verb == "edited" else "delete",
            changed_at=entry.delivery(value, "created_time"),
            text=value.opt_text("message") if verb == "edited" else "",
            author_id=author_id, audience=who,
        )
    elif verb in QUIET_VERBS:
        out.skip(f"feed verb {verb!r} changes nothing counted")
    else:
        raise BadPayload(f"{value.at('verb')} {verb[:40]!r} is not add, edited or remove")


def _mention(
    entry: Entry, value: Node, arrival: Arrival, index: AccountIndex, out: Collector,
) -> None:
    """The Page was mentioned in a post or a comment elsewhere."""
    post_id = value.ident("post_id")
    comment_id = value.opt_ident("comment_id") if value.opt_text("item") == "comment" else None
    author_id = value.opt_ident("sender_id") or ""
    who = audience(PLATFORM, index, entry, arrival).ids(author_id)
    event_id = comment_id or post_id
    verb = value.opt_text("verb", "add")
    if verb == "remove":
        out.change(
            platform=PLATFORM, event_id=event_id, change="delete",
            changed_at=entry.delivery(value, "created_time"), text="", author_id=author_id,
            audience=who,
        )
        return
    if verb != "add":
        out.skip(f"mention verb {verb[:20]!r} changes nothing counted")
        return
    parent_id = post_id if comment_id else None
    draft = Draft(
        platform=PLATFORM, event_id=event_id,
        kind=kind_of(dm=False, parent=parent_id, quoted=None, mentions_tracked=True),
        author_id=author_id, author_handle=value.opt_text("sender_name"),
        created_at=entry.time(value, "created_time"), parent_id=parent_id, root_id=post_id,
        mentioned_ids=(entry.account_id,), text=value.opt_text("message"),
    )
    out.interaction(draft, who)
