"""X (API v2): filtered-stream and search responses, and DM events -> rows.

A response holds one post (``data`` object, filtered stream) or several (``data`` array,
search) plus ``includes.users`` for handles. The thread root is ``conversation_id``; the
parent's author is ``in_reply_to_user_id``. An edited post arrives as a new post id whose
``edit_history_tweet_ids`` starts with the original id: that is a change of the original,
never a new interaction. Search rules that matched (``matching_rules``) or the arrival's
``listen:<rule>`` say which listened sources delivered the post.

Fields are read with :mod:`streams.normalize.access` (fast when the payload is as expected,
precise when it is not) and rows are written directly by :class:`~streams.normalize.rows.Rows`.
"""

from __future__ import annotations

from typing import Any

from streams.normalize.access import (
    Where,
    at,
    ident,
    iso_ms,
    objects,
    of,
    opt_array,
    opt_ident,
    opt_obj,
    opt_text,
    path_of,
    text,
)
from streams.normalize.base import BadPayload
from streams.normalize.rows import Rows, kind_of

PLATFORM = "x"


_USERS = ("includes", "users")
_TWEETS = ("includes", "tweets")


def normalize_x(payload: Any, rows: Rows) -> None:
    top = of(payload)
    data = top.get("data")
    items: list[tuple[dict[str, Any], Where]]
    if type(data) is dict:
        items = [(data, "data")]
    elif data is None:
        if top.get("errors") is not None:
            rows.skip("response holds only errors")
            return
        if "id" in top and ("text" in top or "event_type" in top):
            items = [(top, "")]  # a bare post or DM event, as some clients unwrap them
        else:
            rows.skip("response holds no posts")
            return
    elif isinstance(data, dict):
        items = [(data, "data")]
    elif isinstance(data, list):
        items = [(of(item, ("data", i)), ("data", i)) for i, item in enumerate(data)]
    else:
        raise BadPayload("data must be an object or an array")

    includes = opt_obj(top, "includes")
    users: dict[str, str] = {}
    authors: dict[str, str | None] = {}
    if includes is not None:
        for i, user in enumerate(objects(includes, "users", "includes")):
            users[ident(user, "id", (_USERS, i))] = opt_text(user, "username", (_USERS, i))
        for i, post in enumerate(objects(includes, "tweets", "includes")):
            authors[ident(post, "id", (_TWEETS, i))] = opt_ident(post, "author_id", (_TWEETS, i))
    rules: list[str] = []
    for i, rule in enumerate(objects(top, "matching_rules")):
        rule_where = ("matching_rules", i)
        tag, rule_id = opt_text(rule, "tag", rule_where), opt_ident(rule, "id", rule_where)
        if tag:
            rules.append(tag)
        if rule_id:
            rules.append(rule_id)

    for item, where in items:
        if "event_type" in item:
            _dm(item, where, users, rows)
        else:
            _post(item, where, users, authors, rules, rows)


def _post(
    item: dict[str, Any], where: Where, users: dict[str, str], authors: dict[str, str | None], rules: list[str],
    rows: Rows,
) -> None:
    post_id = ident(item, "id", where)
    body = text(item, "text", where)
    author_id = ident(item, "author_id", where)
    created_at = iso_ms(item, "created_at", where)

    parent_id = quoted_id = reposted_id = None
    refs_where = (where, "referenced_tweets")
    for i, ref in enumerate(objects(item, "referenced_tweets", where)):
        ref_where = (refs_where, i)
        ref_type, ref_id = text(ref, "type", ref_where), ident(ref, "id", ref_where)
        if ref_type == "replied_to":
            parent_id = ref_id
        elif ref_type == "quoted":
            quoted_id = ref_id
        elif ref_type == "retweeted":
            reposted_id = ref_id
    parent_author = opt_ident(item, "in_reply_to_user_id", where) or authors.get(parent_id or "")
    quoted_author = authors.get(quoted_id or "")

    mention_ids: list[str] = []
    mention_names: list[str] = []
    tags: list[str] = []
    entities = opt_obj(item, "entities", where)
    if entities is not None:
        entities_where = (where, "entities")
        mentions_where = (entities_where, "mentions")
        for i, m in enumerate(objects(entities, "mentions", entities_where)):
            m_where = (mentions_where, i)
            mid, name = opt_ident(m, "id", m_where), opt_text(m, "username", m_where)
            if not mid and not name:
                raise BadPayload(f"{path_of(m_where)} names neither id nor username")
            mention_ids.append(mid or name.lower())
            mention_names.append(name)
        tags = [
            f"#{text(h, 'tag', ((entities_where, 'hashtags'), i))}"
            for i, h in enumerate(objects(entities, "hashtags", entities_where))
        ]
    mentioned = tuple(dict.fromkeys(mention_ids))
    listened = rules + tags if tags else rules
    ctx = rows.ctx

    history = opt_array(item, "edit_history_tweet_ids", where)
    if history:
        first = history[0]
        if isinstance(first, bool) or not isinstance(first, str | int):
            raise BadPayload(f"{at(where, 'edit_history_tweet_ids')}[0] must be a post id")
        original = str(first)
        if original != post_id:
            keys = ctx.audience((author_id, parent_author, quoted_author, *mentioned), mention_names, listened)
            rows.change(keys, original, "edit", created_at, body, author_id)
            return

    handle = users.get(author_id, "")
    lang = opt_text(item, "lang", where)
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
        root_id=opt_ident(item, "conversation_id", where) or (None if parent_id else post_id),
        quoted_id=quoted_id, quoted_author_id=quoted_author, mentioned_ids=mentioned, text=body,
        lang=lang, url=url,
    )


def _dm(item: dict[str, Any], where: Where, users: dict[str, str], rows: Rows) -> None:
    """A ``dm_events`` item; only ``MessageCreate`` is a message."""
    event_type = text(item, "event_type", where)
    if event_type != "MessageCreate":
        rows.skip(f"DM event type {event_type[:40]!r} is not read")
        return
    event_id = ident(item, "id", where)
    sender = ident(item, "sender_id", where)
    conversation = ident(item, "dm_conversation_id", where)
    participants = [
        str(p) for p in opt_array(item, "participant_ids", where)
        if isinstance(p, str | int) and not isinstance(p, bool)
    ]
    if not participants:
        participants = conversation.split("-")  # one-to-one ids are "<id>-<id>"
    others = [p for p in dict.fromkeys(participants) if p and p != sender]
    ctx = rows.ctx
    recipient = next((p for p in others if p in ctx.ids), None)
    rows.interaction(
        ctx.audience((sender, *others)), event_id, "dm", sender, iso_ms(item, "created_at", where),
        author_handle=users.get(sender, ""), root_id=conversation,
        recipient_id=recipient or (others[0] if others else None), text=opt_text(item, "text", where),
    )
