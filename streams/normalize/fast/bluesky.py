"""Fast path of :mod:`streams.normalize.bluesky`: Jetstream commits read with plain dict access.

Mirrors the checked module step for step (same rows, same skip reasons); anything it does
not expect raises and the checked module decides. Keep the two in step: a change there
needs its twin here, and ``tests/unit/normalize/test_fast_path.py`` compares them.
"""

from __future__ import annotations

from typing import Any

from streams.normalize.access import MAX_MS, lenient_iso_ms
from streams.normalize.bluesky import (
    EMBED_RECORD,
    EMBED_WITH_MEDIA,
    FOLLOW,
    MENTION,
    POST,
    READ,
    SIGNALS,
    TAG,
    collection_of_uri,
    did_of_uri,
)
from streams.normalize.emit import kind_of, unique
from streams.normalize.fast.core import Fallback, Key, Rows, ident, obj, objects, opt_array, opt_obj, opt_text, text


def _at_uri(value: Any) -> str:
    uri = ident(value)
    if uri.startswith("at://") and len(uri) > 5:
        return uri
    raise Fallback


def _did(value: Any) -> str:
    did = ident(value)
    if did.startswith("did:"):
        return did
    raise Fallback


def fast_bluesky(payload: Any, rows: Rows) -> None:
    """Commits only; identity/account events and bad payloads go to the checked path."""
    if type(payload) is not dict or payload.get("kind") != "commit":
        raise Fallback
    did = _did(payload.get("did"))
    handle = opt_text(payload.get("_handle"))
    time_us = payload.get("time_us")
    if type(time_us) is int:
        created_at = time_us // 1000
    elif type(time_us) is float and time_us.is_integer():
        created_at = int(time_us) // 1000
    else:
        raise Fallback
    if not 0 <= created_at < MAX_MS:
        raise Fallback
    commit = obj(payload.get("commit"))
    operation = text(commit.get("operation"))
    collection = text(commit.get("collection"))
    if collection not in READ:
        rows.skip(f"collection {collection[:60]!r} is not read")
        return
    rkey = ident(commit.get("rkey"))
    uri = f"at://{did}/{collection}/{rkey}"
    ctx = rows.ctx
    if operation == "create":
        record = obj(commit.get("record"))
        if collection == POST:
            _post(record, did, uri, rkey, created_at, rows, edit=False, handle=handle)
        else:
            _signal(record, collection, did, uri, created_at, rows, handle)
    elif operation == "delete":
        rows.change(ctx.audience((did,)), uri, "delete", created_at, "", did)
    elif operation == "update":
        if collection != POST:
            rows.skip(f"update of {collection} is not read")
            return
        _post(obj(commit.get("record")), did, uri, rkey, created_at, rows, edit=True)
    else:
        raise Fallback


def _post(
    record: dict[str, Any], did: str, uri: str, rkey: str, created_at: int, rows: Rows, edit: bool,
    handle: str = "",
) -> None:
    body = text(record.get("text"))
    parent_id = root_id = parent_author = None
    reply = opt_obj(record.get("reply"))
    if reply is not None:
        parent_id = _at_uri(obj(reply.get("parent")).get("uri"))
        root_id = _at_uri(obj(reply.get("root")).get("uri"))
        parent_author = did_of_uri(parent_id)

    quoted_id = quoted_author = None
    embed = opt_obj(record.get("embed"))
    if embed is not None:
        embed_type = opt_text(embed.get("$type"))
        ref = None
        if embed_type == EMBED_RECORD:
            ref = obj(embed.get("record"))
        elif embed_type == EMBED_WITH_MEDIA:
            ref = obj(obj(embed.get("record")).get("record"))
        if ref is not None:
            target = _at_uri(ref.get("uri"))
            if collection_of_uri(target) == POST:
                quoted_id, quoted_author = target, did_of_uri(target)

    mentions: list[str] = []
    tags: list[str] = []
    for facet in objects(record.get("facets")):
        for feature in objects(facet.get("features")):
            feature_type = opt_text(feature.get("$type"))
            if feature_type == MENTION:
                mentions.append(_did(feature.get("did")))
            elif feature_type == TAG:
                tags.append(text(feature.get("tag")))
    for entity in objects(record.get("entities")):
        if opt_text(entity.get("type")) == "mention":
            mentions.append(_did(entity.get("value")))
    for tag in opt_array(record.get("tags")):
        tags.append(text(tag))
    langs = opt_array(record.get("langs"))
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
    # The checked path also parses createdAt for an edit; it is lenient, so it cannot differ.
    rows.interaction(
        keys, uri,
        kind_of(dm=False, parent=parent_id, quoted=quoted_id, mentions_tracked=ctx.tracked_ids(mentioned)),
        did, created_at, author_handle=handle,
        parent_id=parent_id, parent_author_id=parent_author,
        root_id=root_id if reply is not None else uri,
        quoted_id=quoted_id, quoted_author_id=quoted_author, mentioned_ids=mentioned, text=body,
        lang=lang, url=f"https://bsky.app/profile/{did}/post/{rkey}",
        client_created_at=lenient_iso_ms(record.get("createdAt")),
    )


def _signal(
    record: dict[str, Any], collection: str, did: str, uri: str, created_at: int, rows: Rows,
    handle: str = "",
) -> None:
    target: str | None
    if collection == FOLLOW:
        kind, parent_id = "follow", None
        target = _did(record.get("subject"))
    else:
        kind = SIGNALS[collection]
        parent_id = _at_uri(obj(record.get("subject")).get("uri"))
        target = did_of_uri(parent_id)
    keys: list[Key] = rows.ctx.audience((did, target))
    rows.interaction(
        keys, uri, kind, did, created_at, author_handle=handle, parent_id=parent_id, parent_author_id=target,
        client_created_at=lenient_iso_ms(record.get("createdAt")),
    )
