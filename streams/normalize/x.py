"""X (API v2): filtered-stream and search responses, and DM events -> rows.

A response holds one post (``data`` object, filtered stream) or several (``data`` array,
search) plus ``includes.users`` for handles. The thread root is ``conversation_id``; the
parent's author is ``in_reply_to_user_id``. An edited post arrives as a new post id whose
``edit_history_tweet_ids`` starts with the original id: that is a change of the original,
never a new interaction. Search rules that matched (``matching_rules``) or the arrival's
``listen:<rule>`` say which listened sources delivered the post.

Its fast path, :mod:`streams.normalize.fast.x`, must give exactly the same outcome: a change
here needs its twin there (tests/unit/normalize/test_fast_path.py compares the two).
"""

from __future__ import annotations

from typing import Any

from streams.normalize.access import Node
from streams.normalize.base import AccountIndex, Arrival, BadPayload, Outcome, Skipped
from streams.normalize.emit import Audience, Collector, Draft, kind_of, tracked_id, tracked_name

PLATFORM = "x"


def normalize_x(payload: Any, arrival: Arrival, index: AccountIndex) -> Outcome:
    top = Node.of(payload)
    data = top.raw("data")
    if data is None:
        if top.has("errors"):
            return Skipped("response holds only errors")
        if "id" in top.data and ("text" in top.data or "event_type" in top.data):
            items = [top]  # a bare post or DM event, as some clients unwrap them
        else:
            return Skipped("response holds no posts")
    elif isinstance(data, dict):
        items = [Node.of(data, "data")]
    elif isinstance(data, list):
        items = [Node.of(item, f"data[{i}]") for i, item in enumerate(data)]
    else:
        raise BadPayload("data must be an object or an array")

    includes = top.opt_obj("includes")
    users: dict[str, str] = {}
    authors: dict[str, str | None] = {}
    if includes is not None:
        for user in includes.objects("users"):
            users[user.ident("id")] = user.opt_text("username")
        for post in includes.objects("tweets"):
            authors[post.ident("id")] = post.opt_ident("author_id")
    rules: list[str] = []
    for rule in top.objects("matching_rules"):
        rules.extend(r for r in (rule.opt_text("tag"), rule.opt_ident("id")) if r)

    out = Collector(arrival)
    for item in items:
        if "event_type" in item.data:
            _dm(item, users, arrival, index, out)
        else:
            _post(item, users, authors, rules, arrival, index, out)
    return out.outcome()


def _post(
    item: Node, users: dict[str, str], authors: dict[str, str | None], rules: list[str],
    arrival: Arrival, index: AccountIndex, out: Collector,
) -> None:
    post_id = item.ident("id")
    text = item.text("text")
    author_id = item.ident("author_id")
    created_at = item.iso_ms("created_at")

    parent_id = quoted_id = reposted_id = None
    for ref in item.objects("referenced_tweets"):
        ref_type, ref_id = ref.text("type"), ref.ident("id")
        if ref_type == "replied_to":
            parent_id = ref_id
        elif ref_type == "quoted":
            quoted_id = ref_id
        elif ref_type == "retweeted":
            reposted_id = ref_id
    parent_author = item.opt_ident("in_reply_to_user_id") or authors.get(parent_id or "")
    quoted_author = authors.get(quoted_id or "")

    mention_ids: list[str] = []
    mention_names: list[str] = []
    tags: list[str] = []
    entities = item.opt_obj("entities")
    if entities is not None:
        for m in entities.objects("mentions"):
            mid, name = m.opt_ident("id"), m.opt_text("username")
            if not mid and not name:
                raise BadPayload(f"{m.path} names neither id nor username")
            mention_ids.append(mid or name.lower())
            mention_names.append(name)
        tags = [f"#{h.text('tag')}" for h in entities.objects("hashtags")]
    mentioned = tuple(dict.fromkeys(mention_ids))
    audience = (
        Audience(PLATFORM, index)
        .ids(author_id, parent_author, quoted_author, *mentioned)
        .names(*mention_names)
        .listened(*rules, *tags)
        .arrival(arrival)
    )

    history = item.opt_array("edit_history_tweet_ids")
    if history:
        if isinstance(history[0], bool) or not isinstance(history[0], str | int):
            raise BadPayload(f"{item.at('edit_history_tweet_ids')}[0] must be a post id")
        original = str(history[0])
        if original != post_id:
            out.change(
                platform=PLATFORM, event_id=original, change="edit", changed_at=created_at,
                text=text, author_id=author_id, audience=audience,
            )
            return

    handle = users.get(author_id, "")
    common: dict[str, Any] = dict(
        platform=PLATFORM, event_id=post_id, author_id=author_id, author_handle=handle,
        created_at=created_at, lang=item.opt_text("lang"),
        url=f"https://x.com/{handle or 'i/web'}/status/{post_id}",
    )
    if reposted_id is not None:
        reposted_author = authors.get(reposted_id)
        audience.ids(reposted_author)
        draft = Draft(
            kind="repost", parent_id=reposted_id, parent_author_id=reposted_author, **common
        )
    else:
        tracked = any(tracked_id(index, PLATFORM, m) for m in mentioned) or any(
            tracked_name(index, PLATFORM, n) for n in mention_names
        )
        draft = Draft(
            kind=kind_of(dm=False, parent=parent_id, quoted=quoted_id, mentions_tracked=tracked),
            parent_id=parent_id,
            parent_author_id=parent_author,
            root_id=item.opt_ident("conversation_id") or (None if parent_id else post_id),
            quoted_id=quoted_id,
            quoted_author_id=quoted_author,
            mentioned_ids=mentioned,
            text=text,
            **common,
        )
    out.interaction(draft, audience)


def _dm(
    item: Node, users: dict[str, str], arrival: Arrival, index: AccountIndex, out: Collector,
) -> None:
    """A ``dm_events`` item; only ``MessageCreate`` is a message."""
    event_type = item.text("event_type")
    if event_type != "MessageCreate":
        out.skip(f"DM event type {event_type[:40]!r} is not read")
        return
    event_id = item.ident("id")
    sender = item.ident("sender_id")
    conversation = item.ident("dm_conversation_id")
    participants = [
        str(p) for p in item.opt_array("participant_ids")
        if isinstance(p, str | int) and not isinstance(p, bool)
    ]
    if not participants:
        participants = conversation.split("-")  # one-to-one ids are "<id>-<id>"
    others = [p for p in dict.fromkeys(participants) if p and p != sender]
    recipient = next((p for p in others if tracked_id(index, PLATFORM, p)), None)
    draft = Draft(
        platform=PLATFORM, event_id=event_id, kind="dm", author_id=sender,
        author_handle=users.get(sender, ""), created_at=item.iso_ms("created_at"),
        root_id=conversation, recipient_id=recipient or (others[0] if others else None),
        text=item.opt_text("text"),
    )
    out.interaction(draft, Audience(PLATFORM, index).ids(sender, *others).arrival(arrival))
