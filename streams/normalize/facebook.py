"""Facebook Page webhooks: feed changes (posts, comments, reactions, shares), Page
mentions and Messenger messages -> rows.

Every change arrives through the Page's own subscription (the entry ``id``), so it
concerns that Page whoever wrote it. Verbs: ``add`` is a new interaction, ``edited`` an
edit and ``remove`` a delete (changes, never overwrites). A reaction has no id of its own:
it is ``like:<actor>:<target>`` whatever its type (love, haha, ...), so removing it names
the same row.

Fields are read with :mod:`streams.normalize.access` (fast when the payload is as expected,
precise when it is not) and rows are written directly by :class:`~streams.normalize.rows.Rows`.
"""

from __future__ import annotations

from typing import Any

from streams.normalize.access import Where, at, ident, opt_ident, opt_obj, opt_text, text
from streams.normalize.base import BadPayload
from streams.normalize.rows import Rows, kind_of
from streams.normalize.webhook import Entry, normalize_envelope

PLATFORM = "facebook"
POST_ITEMS = frozenset({"post", "status", "photo", "video", "note", "event", "album", "link"})
REACTION_ITEMS = frozenset({"reaction", "like"})
QUIET_VERBS = frozenset({"hide", "unhide", "block", "unblock", "edit_reaction"})


def normalize_facebook(payload: Any, rows: Rows) -> None:
    normalize_envelope(payload, "page", rows, _on_change)


def _on_change(entry: Entry, field: str, value: dict[str, Any], where: Where, rows: Rows) -> None:
    if field == "feed":
        _feed(entry, value, where, rows)
    elif field == "mention":
        _mention(entry, value, where, rows)
    else:
        rows.skip(f"field {field[:40]!r} is not read")


def _author(value: dict[str, Any], where: Where) -> tuple[str, str]:
    """Facebook omits ``from`` for people who keep it private: the author is unknown."""
    sender = opt_obj(value, "from", where)
    if sender is None:
        return "", ""
    return ident(sender, "id", (where, "from")), opt_text(sender, "name", (where, "from"))


def _feed(entry: Entry, value: dict[str, Any], where: Where, rows: Rows) -> None:
    item = text(value, "item", where)
    verb = text(value, "verb", where)
    author_id, name = _author(value, where)
    keys = rows.ctx.audience((entry.account_id, author_id))

    if item in REACTION_ITEMS:
        post_id = opt_ident(value, "post_id", where)
        target = opt_ident(value, "comment_id", where) or post_id
        if target is None:
            raise BadPayload(f"{at(where, 'post_id')} missing")
        if not author_id:
            rows.skip("reaction without its actor: it has no id to be recorded under")
            return
        event_id = f"like:{author_id}:{target}"
        if verb == "add":
            rows.interaction(
                keys, event_id, "like", author_id, entry.time(value, where, "created_time"), author_handle=name,
                parent_id=target,  # signals belong to no thread: no root
            )
        elif verb == "remove":
            rows.change(keys, event_id, "delete", entry.delivery(value, where, "created_time"), "", author_id)
        else:  # "edit": the reaction type changed, it is still the same like
            rows.skip(f"reaction verb {verb[:20]!r} changes nothing counted")
        return

    parent_id: str | None
    if item == "comment":
        event_id = ident(value, "comment_id", where)
        root_id = ident(value, "post_id", where)
        parent_id = opt_ident(value, "parent_id", where) or root_id
        kind = "reply"  # a comment always has a parent: the post or another comment
    elif item in POST_ITEMS or item == "share":
        # A share in the Page's feed is a post of its own (with its own id), not a repost
        # of one of the Page's posts: the payload does not say what was shared.
        # Comments name the feed post by post_id, so that is the id; share_id is a fallback.
        share_id = opt_ident(value, "share_id", where) if item == "share" else None
        event_id = opt_ident(value, "post_id", where) or share_id or ident(value, "post_id", where)
        root_id, parent_id = event_id, None
        kind = "post"
    else:
        rows.skip(f"feed item {item[:40]!r} is not read")
        return

    if verb == "add":
        rows.interaction(
            keys, event_id, kind, author_id, entry.time(value, where, "created_time"), author_handle=name,
            parent_id=parent_id, root_id=root_id, text=opt_text(value, "message", where),
            url=opt_text(value, "link", where) if item == "share" else "",
        )
    elif verb == "edited" or verb == "remove":
        edited = verb == "edited"
        rows.change(
            keys, event_id, "edit" if edited else "delete", entry.delivery(value, where, "created_time"),
            opt_text(value, "message", where) if edited else "", author_id,
        )
    elif verb in QUIET_VERBS:
        rows.skip(f"feed verb {verb!r} changes nothing counted")
    else:
        raise BadPayload(f"{at(where, 'verb')} {verb[:40]!r} is not add, edited or remove")


def _mention(entry: Entry, value: dict[str, Any], where: Where, rows: Rows) -> None:
    """The Page was mentioned in a post or a comment elsewhere."""
    post_id = ident(value, "post_id", where)
    comment_id = opt_ident(value, "comment_id", where) if opt_text(value, "item", where) == "comment" else None
    author_id = opt_ident(value, "sender_id", where) or ""
    keys = rows.ctx.audience((entry.account_id, author_id))
    event_id = comment_id or post_id
    verb = opt_text(value, "verb", where, "add")
    if verb == "remove":
        rows.change(keys, event_id, "delete", entry.delivery(value, where, "created_time"), "", author_id)
        return
    if verb != "add":
        rows.skip(f"mention verb {verb[:20]!r} changes nothing counted")
        return
    parent_id = post_id if comment_id else None
    handle = opt_text(value, "sender_name", where)
    rows.interaction(
        keys, event_id, kind_of(dm=False, parent=parent_id, quoted=None, mentions_tracked=True), author_id,
        entry.time(value, where, "created_time"), author_handle=handle,
        parent_id=parent_id, root_id=post_id, mentioned_ids=(entry.account_id,),
        text=opt_text(value, "message", where),
    )
