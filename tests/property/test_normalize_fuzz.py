"""Normalization never raises: any JSON value, and fixtures with keys deleted or retyped,
yields exactly one of Normalized / Skipped / DeadLetter, with well-formed rows."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.interaction import KINDS
from streams.normalize.access import MAX_MS
from streams.normalize.base import DeadLetter, Normalized, Outcome, Skipped
from streams.normalize.registry import normalize
from tests.unit.normalize.support import (
    PLATFORMS,
    arrival,
    extra_payloads,
    index,
    shared_lines,
)

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)

# Field names the normalizers read, so random objects reach past the first check.
VOCAB = [
    "kind", "did", "time_us", "commit", "operation", "collection", "rkey", "record", "text",
    "reply", "root", "parent", "uri", "subject", "facets", "features", "$type", "embed",
    "entities", "data", "name", "id", "author", "body", "parent_id", "link_id", "created_utc",
    "replies", "children", "title", "selftext", "subreddit", "context", "event", "payload",
    "account", "status", "type", "content", "created_at", "in_reply_to_id", "mentions",
    "includes", "users", "referenced_tweets", "author_id", "edit_history_tweet_ids", "object",
    "entry", "time", "changes", "field", "value", "item", "verb", "from", "messaging",
    "message", "sender", "recipient", "media", "media_id", "comment_id", "post_id",
]
SPECIAL = [
    "", "commit", "create", "update", "delete", "app.bsky.feed.post", "app.bsky.feed.like",
    "app.bsky.graph.follow", "at://", "at://did:plc:x/app.bsky.feed.post/1", "did:plc:x",
    "t1", "t3", "t4", "Listing", "t1_a", "t3_b", "update", "notification", "status.update",
    "mention", "favourite", "reblog", "follow", "page", "instagram", "feed", "comment",
    "reaction", "add", "edited", "remove", "comments", "mentions", "messages",
    "2026-11-25T12:00:00Z", "u/acme_official", "@acme", "direct", "replied_to", "quoted",
]
scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=12) | st.sampled_from(SPECIAL)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(VOCAB) | st.text(max_size=8), inner, max_size=6),
    max_leaves=30,
)


def check(platform: str, payload: Any) -> Outcome:
    out = normalize(platform, payload, arrival(platform), index())
    assert isinstance(out, Normalized | Skipped | DeadLetter)
    if isinstance(out, Normalized):
        assert out.interactions or out.changes
        for i in out.interactions:
            assert i.kind in KINDS and i.event_id and i.client_id and i.account_id
            assert isinstance(i.text, str) and isinstance(i.author_id, str)
            assert 0 <= i.created_at < MAX_MS
            assert all(isinstance(m, str) and m for m in i.mentioned_ids)
        for c in out.changes:
            assert c.change in ("edit", "delete") and c.event_id
            assert 0 <= c.changed_at < MAX_MS
    else:
        assert out.reason
    return out


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(paths(v, (*prefix, i)))
    return out


def mutate(payload: Any, path: tuple[Any, ...], op: str, new: Any) -> Any:
    payload = copy.deepcopy(payload)
    if not path:
        return new
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "delete" and isinstance(parent, dict):
        del parent[last]
    elif op == "stringify":
        parent[last] = json.dumps(parent[last])
    elif op == "wrap":
        parent[last] = [parent[last]]
    else:
        parent[last] = new
    return payload


def seeds(platform: str) -> list[Any]:
    return shared_lines(platform) + extra_payloads(platform)


@FUZZ
@given(platform=st.sampled_from(PLATFORMS), payload=json_values)
def test_any_json_value_gives_one_outcome(platform: str, payload: Any) -> None:
    check(platform, payload)


@FUZZ
@given(data=st.data(), platform=st.sampled_from(PLATFORMS))
def test_mutated_fixtures_give_one_outcome(data: st.DataObject, platform: str) -> None:
    payload = data.draw(st.sampled_from(seeds(platform)))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(paths(payload)))
        op = data.draw(st.sampled_from(["delete", "replace", "stringify", "wrap"]))
        payload = mutate(payload, path, op, data.draw(json_values))
    check(platform, payload)


@FUZZ
@given(payload=json_values)
def test_mastodon_string_payloads_give_one_outcome(payload: Any) -> None:
    for event in ("update", "notification", "status.update", "delete", "conversation"):
        check("mastodon", {"event": event, "payload": json.dumps(payload)})


def test_unmutated_seeds_never_dead_letter_unless_meant_to() -> None:
    for platform in PLATFORMS:
        for payload in shared_lines(platform):
            assert not isinstance(check(platform, payload), DeadLetter)
