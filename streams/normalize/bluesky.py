"""Bluesky: Jetstream events -> interactions and changes.

Jetstream re-publishes repository commits as JSON. The event time is the relay's
``time_us`` (the record's ``createdAt`` is set by the posting client and only kept as
``client_created_at``). Every reference (event, parent, root, subject, quote) is an AT-URI
``at://<did>/<collection>/<rkey>``, so a parent's author is the DID inside its URI: that
is how a reply, like or repost names the account it concerns without any lookup.
Handles are not in Jetstream events; when the agent resolved the author's (setting
``bluesky_resolve_handles``) it added it at the top level as ``_handle``, read here as the
author's handle.

Its fast path, :mod:`streams.normalize.fast.bluesky`, must give exactly the same outcome: a change
here needs its twin there (tests/unit/normalize/test_fast_path.py compares the two).
"""

from __future__ import annotations

from typing import Any

from streams.normalize.access import Node, checked_ms, lenient_iso_ms
from streams.normalize.base import AccountIndex, Arrival, BadPayload, Outcome, Skipped
from streams.normalize.emit import Audience, Collector, Draft, kind_of, tracked_id, unique

PLATFORM = "bluesky"
POST = "app.bsky.feed.post"
SIGNALS = {"app.bsky.feed.like": "like", "app.bsky.feed.repost": "repost"}
FOLLOW = "app.bsky.graph.follow"
READ = frozenset({POST, FOLLOW, *SIGNALS})
MENTION = "app.bsky.richtext.facet#mention"
TAG = "app.bsky.richtext.facet#tag"
EMBED_RECORD = "app.bsky.embed.record"
EMBED_WITH_MEDIA = "app.bsky.embed.recordWithMedia"
SKIPPED_KINDS = frozenset({"identity", "account"})


def did_of_uri(uri: str) -> str | None:
    """The DID authority of an AT-URI; ``None`` when the authority is a handle."""
    authority = uri.removeprefix("at://").split("/", 1)[0]
    return authority if authority.startswith("did:") else None


def collection_of_uri(uri: str) -> str:
    parts = uri.removeprefix("at://").split("/")
    return parts[1] if len(parts) > 1 else ""


def _at_uri(node: Node, key: str) -> str:
    uri = node.ident(key)
    if not uri.startswith("at://") or len(uri) <= len("at://"):
        raise BadPayload(f"{node.at(key)} is not an AT-URI: {uri[:60]!r}")
    return uri


def _did(node: Node, key: str) -> str:
    did = node.ident(key)
    if not did.startswith("did:"):
        raise BadPayload(f"{node.at(key)} is not a DID: {did[:60]!r}")
    return did


def normalize_bluesky(payload: Any, arrival: Arrival, index: AccountIndex) -> Outcome:
    """One Jetstream event. Identity/account events and unread collections are skipped."""
    event = Node.of(payload)
    kind = event.text("kind")
    if kind in SKIPPED_KINDS:
        return Skipped(f"jetstream {kind} event")
    if kind != "commit":
        return Skipped(f"jetstream event kind {kind[:40]!r} is not read")
    did = _did(event, "did")
    handle = event.opt_text("_handle")
    time_us = event.number("time_us")
    if time_us != int(time_us):
        raise BadPayload("time_us is not an integer")
    created_at = checked_ms(int(time_us) // 1000, "time_us")

    commit = event.obj("commit")
    operation = commit.text("operation")
    collection = commit.text("collection")
    if collection not in READ:
        return Skipped(f"collection {collection[:60]!r} is not read")
    rkey = commit.ident("rkey")
    uri = f"at://{did}/{collection}/{rkey}"
    out = Collector(arrival)

    if operation == "delete":
        # A delete names only collection and rkey; it concerns the account when the
        # account deleted it (or the stream is the account's own).
        audience = Audience(PLATFORM, index).ids(did).arrival(arrival)
        out.change(
            platform=PLATFORM, event_id=uri, change="delete", changed_at=created_at,
            text="", author_id=did, audience=audience,
        )
    elif operation == "update":
        if collection != POST:
            return Skipped(f"update of {collection} is not read")
        draft, audience = _post(commit.obj("record"), did, uri, rkey, created_at, arrival, index)
        out.change(
            platform=PLATFORM, event_id=uri, change="edit", changed_at=created_at,
            text=draft.text, author_id=did, audience=audience,
        )
    elif operation == "create":
        record = commit.obj("record")
        if collection == POST:
            draft, audience = _post(record, did, uri, rkey, created_at, arrival, index, handle)
        else:
            draft, audience = _signal(record, collection, did, uri, created_at, arrival, index, handle)
        out.interaction(draft, audience)
    else:
        raise BadPayload(f"commit.operation {operation[:40]!r} is not create, update or delete")
    return out.outcome()


def _post(
    record: Node, did: str, uri: str, rkey: str, created_at: int,
    arrival: Arrival, index: AccountIndex, handle: str = "",
) -> tuple[Draft, Audience]:
    text = record.text("text")
    parent_id = root_id = parent_author = None
    reply = record.opt_obj("reply")
    if reply is not None:
        parent_id = _at_uri(reply.obj("parent"), "uri")
        root_id = _at_uri(reply.obj("root"), "uri")
        parent_author = did_of_uri(parent_id)

    quoted_id = quoted_author = None
    embed = record.opt_obj("embed")
    if embed is not None:
        embed_type = embed.opt_text("$type")
        ref = None
        if embed_type == EMBED_RECORD:
            ref = embed.obj("record")
        elif embed_type == EMBED_WITH_MEDIA:
            ref = embed.obj("record").obj("record")
        # Only a post can be quoted; an embedded list or feed generator is not a quote.
        if ref is not None:
            target = _at_uri(ref, "uri")
            if collection_of_uri(target) == POST:
                quoted_id, quoted_author = target, did_of_uri(target)

    mentions: list[str] = []
    tags: list[str] = []
    for facet in record.objects("facets"):
        for feature in facet.objects("features"):
            feature_type = feature.opt_text("$type")
            if feature_type == MENTION:
                mentions.append(_did(feature, "did"))
            elif feature_type == TAG:
                tags.append(feature.text("tag"))
    for entity in record.objects("entities"):  # deprecated pre-facet mentions
        if entity.opt_text("type") == "mention":
            mentions.append(_did(entity, "value"))
    for i, tag in enumerate(record.opt_array("tags")):
        if not isinstance(tag, str):
            raise BadPayload(f"{record.at('tags')}[{i}] must be a string")
        tags.append(tag)
    langs = record.opt_array("langs")
    lang = langs[0] if langs and isinstance(langs[0], str) else ""

    mentioned = unique(mentions)
    audience = (
        Audience(PLATFORM, index)
        .ids(did, parent_author, quoted_author, *mentioned)
        .listened(*(f"#{t.lstrip('#')}" for t in tags if t.strip("#")))
        .arrival(arrival)
    )
    draft = Draft(
        platform=PLATFORM,
        event_id=uri,
        kind=kind_of(
            dm=False, parent=parent_id, quoted=quoted_id,
            mentions_tracked=any(tracked_id(index, PLATFORM, m) for m in mentioned),
        ),
        author_id=did,
        author_handle=handle,
        created_at=created_at,
        parent_id=parent_id,
        parent_author_id=parent_author,
        # A top-level post is the root of its own thread.
        root_id=root_id if reply is not None else uri,
        quoted_id=quoted_id,
        quoted_author_id=quoted_author,
        mentioned_ids=mentioned,
        text=text,
        lang=lang,
        url=f"https://bsky.app/profile/{did}/post/{rkey}",
        client_created_at=lenient_iso_ms(record.raw("createdAt")),
    )
    return draft, audience


def _signal(
    record: Node, collection: str, did: str, uri: str, created_at: int,
    arrival: Arrival, index: AccountIndex, handle: str = "",
) -> tuple[Draft, Audience]:
    """Likes and reposts point at a post (``subject`` strong ref); a follow at a DID."""
    target: str | None
    if collection == FOLLOW:
        kind, parent_id = "follow", None
        target = _did(record, "subject")
    else:
        kind = SIGNALS[collection]
        parent_id = _at_uri(record.obj("subject"), "uri")
        target = did_of_uri(parent_id)
    audience = Audience(PLATFORM, index).ids(did, target).arrival(arrival)
    draft = Draft(
        platform=PLATFORM,
        event_id=uri,
        kind=kind,
        author_id=did,
        author_handle=handle,
        created_at=created_at,
        parent_id=parent_id,
        parent_author_id=target,
        client_created_at=lenient_iso_ms(record.raw("createdAt")),
    )
    return draft, audience
