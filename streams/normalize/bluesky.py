"""Bluesky: Jetstream events -> interactions and changes.

Jetstream re-publishes repository commits as JSON. The event time is the relay's
``time_us`` (the record's ``createdAt`` is set by the posting client and only kept as
``client_created_at``). Every reference (event, parent, root, subject, quote) is an AT-URI
``at://<did>/<collection>/<rkey>``, so a parent's author is the DID inside its URI: that
is how a reply, like or repost names the account it concerns without any lookup.
Handles are not in Jetstream events; when the agent resolved the author's (setting
``bluesky_resolve_handles``) it added it at the top level as ``_handle``, read here as the
author's handle.

Fields are read with :mod:`streams.normalize.access` (fast when the payload is as expected,
precise when it is not) and rows are written directly by :class:`~streams.normalize.rows.Rows`.
"""

from __future__ import annotations

from typing import Any

from streams.normalize.access import (
    Where,
    at,
    checked_ms,
    ident,
    lenient_iso_ms,
    number,
    obj,
    objects,
    of,
    opt_array,
    opt_obj,
    opt_text,
    text,
)
from streams.normalize.base import BadPayload
from streams.normalize.rows import Key, Rows, kind_of, unique

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


def _at_uri(d: dict[str, Any], key: str, where: Where) -> str:
    uri = ident(d, key, where)
    if uri.startswith("at://") and len(uri) > 5:
        return uri
    raise BadPayload(f"{at(where, key)} is not an AT-URI: {uri[:60]!r}")


def _did(d: dict[str, Any], key: str, where: Where) -> str:
    did = ident(d, key, where)
    if did.startswith("did:"):
        return did
    raise BadPayload(f"{at(where, key)} is not a DID: {did[:60]!r}")


def normalize_bluesky(payload: Any, rows: Rows) -> None:
    """One Jetstream event. Identity/account events and unread collections are skipped."""
    event = of(payload)
    kind = text(event, "kind")
    if kind != "commit":
        rows.skip(f"jetstream {kind} event" if kind in SKIPPED_KINDS else
                  f"jetstream event kind {kind[:40]!r} is not read")
        return
    did = _did(event, "did", "")
    handle = opt_text(event, "_handle")
    time_us = event.get("time_us")
    if type(time_us) is not int:
        time_us = number(event, "time_us")
        if time_us != int(time_us):
            raise BadPayload("time_us is not an integer")
    created_at = checked_ms(int(time_us) // 1000, "time_us")

    commit = obj(event, "commit")
    operation = text(commit, "operation", "commit")
    collection = text(commit, "collection", "commit")
    if collection not in READ:
        rows.skip(f"collection {collection[:60]!r} is not read")
        return
    rkey = ident(commit, "rkey", "commit")
    uri = f"at://{did}/{collection}/{rkey}"

    if operation == "create":
        record = obj(commit, "record", "commit")
        if collection == POST:
            _post(record, did, uri, rkey, created_at, rows, edit=False, handle=handle)
        else:
            _signal(record, collection, did, uri, created_at, rows, handle)
    elif operation == "delete":
        # A delete names only collection and rkey; it concerns the account when the
        # account deleted it (or the stream is the account's own).
        rows.change(rows.ctx.audience((did,)), uri, "delete", created_at, "", did)
    elif operation == "update":
        if collection != POST:
            rows.skip(f"update of {collection} is not read")
            return
        _post(obj(commit, "record", "commit"), did, uri, rkey, created_at, rows, edit=True)
    else:
        raise BadPayload(f"commit.operation {operation[:40]!r} is not create, update or delete")


_RECORD = "commit.record"


def _post(
    record: dict[str, Any], did: str, uri: str, rkey: str, created_at: int, rows: Rows, edit: bool,
    handle: str = "",
) -> None:
    body = text(record, "text", _RECORD)
    parent_id = root_id = parent_author = None
    reply = opt_obj(record, "reply", _RECORD)
    if reply is not None:
        parent_id = _at_uri(obj(reply, "parent", "commit.record.reply"), "uri", "commit.record.reply.parent")
        root_id = _at_uri(obj(reply, "root", "commit.record.reply"), "uri", "commit.record.reply.root")
        parent_author = did_of_uri(parent_id)

    quoted_id = quoted_author = None
    embed = opt_obj(record, "embed", _RECORD)
    if embed is not None:
        embed_type = opt_text(embed, "$type", "commit.record.embed")
        ref = ref_where = None
        if embed_type == EMBED_RECORD:
            ref, ref_where = obj(embed, "record", "commit.record.embed"), "commit.record.embed.record"
        elif embed_type == EMBED_WITH_MEDIA:
            outer = obj(embed, "record", "commit.record.embed")
            ref = obj(outer, "record", "commit.record.embed.record")
            ref_where = "commit.record.embed.record.record"
        # Only a post can be quoted; an embedded list or feed generator is not a quote.
        if ref is not None and ref_where is not None:
            target = _at_uri(ref, "uri", ref_where)
            if collection_of_uri(target) == POST:
                quoted_id, quoted_author = target, did_of_uri(target)

    mentions: list[str] = []
    tags: list[str] = []
    for i, facet in enumerate(objects(record, "facets", _RECORD)):
        facet_where = ((_RECORD, "facets"), i)
        for j, feature in enumerate(objects(facet, "features", facet_where)):
            feature_where = ((facet_where, "features"), j)
            feature_type = opt_text(feature, "$type", feature_where)
            if feature_type == MENTION:
                mentions.append(_did(feature, "did", feature_where))
            elif feature_type == TAG:
                tags.append(text(feature, "tag", feature_where))
    for i, entity in enumerate(objects(record, "entities", _RECORD)):  # deprecated pre-facet mentions
        entity_where = ((_RECORD, "entities"), i)
        if opt_text(entity, "type", entity_where) == "mention":
            mentions.append(_did(entity, "value", entity_where))
    for i, tag in enumerate(opt_array(record, "tags", _RECORD)):
        if not isinstance(tag, str):
            raise BadPayload(f"{_RECORD}.tags[{i}] must be a string")
        tags.append(tag)
    langs = opt_array(record, "langs", _RECORD)
    lang = langs[0] if langs and isinstance(langs[0], str) else ""

    mentioned = unique(mentions)
    ctx = rows.ctx
    keys = ctx.audience(
        (did, parent_author, quoted_author, *mentioned),
        listened=[f"#{t.lstrip('#')}" for t in tags if t.strip("#")] if tags else (),
    )
    if edit:
        rows.change(keys, uri, "edit", created_at, body, did)
        return
    rows.interaction(
        keys, uri,
        kind_of(dm=False, parent=parent_id, quoted=quoted_id, mentions_tracked=ctx.tracked_ids(mentioned)),
        did, created_at, author_handle=handle,
        parent_id=parent_id, parent_author_id=parent_author,
        # A top-level post is the root of its own thread.
        root_id=root_id if reply is not None else uri,
        quoted_id=quoted_id, quoted_author_id=quoted_author, mentioned_ids=mentioned, text=body,
        lang=lang, url=f"https://bsky.app/profile/{did}/post/{rkey}",
        client_created_at=lenient_iso_ms(record.get("createdAt")),
    )


def _signal(
    record: dict[str, Any], collection: str, did: str, uri: str, created_at: int, rows: Rows,
    handle: str = "",
) -> None:
    """Likes and reposts point at a post (``subject`` strong ref); a follow at a DID."""
    target: str | None
    if collection == FOLLOW:
        kind, parent_id = "follow", None
        target = _did(record, "subject", _RECORD)
    else:
        kind = SIGNALS[collection]
        parent_id = _at_uri(obj(record, "subject", _RECORD), "uri", "commit.record.subject")
        target = did_of_uri(parent_id)
    keys: list[Key] = rows.ctx.audience((did, target))
    rows.interaction(
        keys, uri, kind, did, created_at, author_handle=handle, parent_id=parent_id, parent_author_id=target,
        client_created_at=lenient_iso_ms(record.get("createdAt")),
    )
