"""Fast path of :mod:`streams.normalize.x`: API v2 responses read with plain dict access.

Mirrors the checked module step for step (same rows, same skip reasons); anything it does
not expect raises and the checked module decides. Keep the two in step: a change there
needs its twin here, and ``tests/unit/normalize/test_fast_path.py`` compares them.
"""

from __future__ import annotations

from typing import Any

from streams.normalize.emit import kind_of
from streams.normalize.fast.core import (
    Fallback,
    Rows,
    ident,
    iso_ms,
    objects,
    opt_array,
    opt_ident,
    opt_obj,
    opt_text,
    text,
)


def fast_x(payload: Any, rows: Rows) -> None:
    """Responses holding posts or DM events; error-only and bare responses fall back."""
    if type(payload) is not dict:
        raise Fallback
    data = payload.get("data")
    if type(data) is dict:
        items = [data]
    elif type(data) is list:
        items = objects(data)
    else:
        raise Fallback

    includes = opt_obj(payload.get("includes"))
    users: dict[str, str] = {}
    authors: dict[str, str | None] = {}
    if includes is not None:
        for user in objects(includes.get("users")):
            users[ident(user.get("id"))] = opt_text(user.get("username"))
        for post in objects(includes.get("tweets")):
            authors[ident(post.get("id"))] = opt_ident(post.get("author_id"))
    rules: list[str] = []
    for rule in objects(payload.get("matching_rules")):
        tag, rule_id = opt_text(rule.get("tag")), opt_ident(rule.get("id"))
        if tag:
            rules.append(tag)
        if rule_id:
            rules.append(rule_id)

    for item in items:
        if "event_type" in item:
            _dm(item, users, rows)
        else:
            _post(item, users, authors, rules, rows)


def _post(
    item: dict[str, Any], users: dict[str, str], authors: dict[str, str | None], rules: list[str],
    rows: Rows,
) -> None:
    post_id = ident(item.get("id"))
    body = text(item.get("text"))
    author_id = ident(item.get("author_id"))
    created_at = iso_ms(item.get("created_at"))

    parent_id = quoted_id = reposted_id = None
    for ref in objects(item.get("referenced_tweets")):
        ref_type, ref_id = text(ref.get("type")), ident(ref.get("id"))
        if ref_type == "replied_to":
            parent_id = ref_id
        elif ref_type == "quoted":
            quoted_id = ref_id
        elif ref_type == "retweeted":
            reposted_id = ref_id
    parent_author = opt_ident(item.get("in_reply_to_user_id")) or authors.get(parent_id or "")
    quoted_author = authors.get(quoted_id or "")

    mention_ids: list[str] = []
    mention_names: list[str] = []
    tags: list[str] = []
    entities = opt_obj(item.get("entities"))
    if entities is not None:
        for m in objects(entities.get("mentions")):
            mid, name = opt_ident(m.get("id")), opt_text(m.get("username"))
            if not mid and not name:
                raise Fallback
            mention_ids.append(mid or name.lower())
            mention_names.append(name)
        tags = [f"#{text(h.get('tag'))}" for h in objects(entities.get("hashtags"))]
    mentioned = tuple(dict.fromkeys(mention_ids))
    listened = rules + tags if tags else rules
    ctx = rows.ctx

    history = opt_array(item.get("edit_history_tweet_ids"))
    if history:
        first = history[0]
        if type(first) is not str and type(first) is not int:
            raise Fallback
        original = str(first)
        if original != post_id:
            keys = ctx.audience((author_id, parent_author, quoted_author, *mentioned), mention_names, listened)
            rows.change(keys, original, "edit", created_at, body, author_id)
            return

    handle = users.get(author_id, "")
    lang = opt_text(item.get("lang"))
    url = f"https://x.com/{handle or 'i/web'}/status/{post_id}"
    if reposted_id is not None:
        reposted_author = authors.get(reposted_id)
        keys = ctx.audience(
            (author_id, parent_author, quoted_author, *mentioned, reposted_author), mention_names, listened,
        )
        rows.interaction(
            keys, post_id, "repost", author_id, created_at, author_handle=handle, parent_id=reposted_id,
            parent_author_id=reposted_author, lang=lang, url=url,
        )
        return
    keys = ctx.audience((author_id, parent_author, quoted_author, *mentioned), mention_names, listened)
    tracked = ctx.tracked_ids(mentioned) or ctx.tracked_names(mention_names)
    rows.interaction(
        keys, post_id, kind_of(dm=False, parent=parent_id, quoted=quoted_id, mentions_tracked=tracked),
        author_id, created_at, author_handle=handle, parent_id=parent_id, parent_author_id=parent_author,
        root_id=opt_ident(item.get("conversation_id")) or (None if parent_id else post_id),
        quoted_id=quoted_id, quoted_author_id=quoted_author, mentioned_ids=mentioned, text=body,
        lang=lang, url=url,
    )


def _dm(item: dict[str, Any], users: dict[str, str], rows: Rows) -> None:
    event_type = text(item.get("event_type"))
    if event_type != "MessageCreate":
        rows.skip(f"DM event type {event_type[:40]!r} is not read")
        return
    event_id = ident(item.get("id"))
    sender = ident(item.get("sender_id"))
    conversation = ident(item.get("dm_conversation_id"))
    participants = [
        str(p) for p in opt_array(item.get("participant_ids"))
        if isinstance(p, str | int) and not isinstance(p, bool)
    ]
    if not participants:
        participants = conversation.split("-")
    others = [p for p in dict.fromkeys(participants) if p and p != sender]
    ctx = rows.ctx
    recipient = next((p for p in others if p in ctx.ids), None)
    rows.interaction(
        ctx.audience((sender, *others)), event_id, "dm", sender, iso_ms(item.get("created_at")),
        author_handle=users.get(sender, ""), root_id=conversation,
        recipient_id=recipient or (others[0] if others else None), text=opt_text(item.get("text")),
    )
