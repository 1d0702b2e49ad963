"""The one normalizer per platform: fast on the happy path, and the batch path gives what
``normalize`` gives.

Each platform module reads fields with :mod:`streams.normalize.access`, whose readers take a
fast branch for the expected types and build a precise reason only on the error path; the
registry is the one dispatcher for both the batch path (``normalize_records``) and single
payloads (``normalize``). These tests check that the batch path writes exactly the rows, skip
reasons and dead-letter reasons ``normalize`` gives, over fixtures, simulated traffic and
mutated fixtures, and that Mastodon's regex HTML reader equals the HTML parser it stands in for.
"""

from __future__ import annotations

import copy
import gc
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.clients import load_clients
from streams.normalize.base import AccountIndex, Arrival, DeadLetter, Normalized, Skipped
from streams.normalize.mastodon import html_to_text, plain_text
from streams.normalize.records import RawRecord, normalize_records
from streams.normalize.registry import normalize
from streams.simulator.traffic import SimEvent, Simulator
from tests.unit.normalize.support import PLATFORMS, extra_payloads, index, shared_lines

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = settings(
    max_examples=400, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Arrivals that change attribution: a listened source, an account's own stream or webhook.
ARRIVALS = [
    ("stream", None), ("webhook", "700001"), ("webhook", "178400000000001"), ("stream", "1001"),
    ("listen:r/acme", None), ("listen:#darkmode", None), ("inbox", "acme_official"), ("stream", "acme"),
]


def seeds(platform: str) -> list[Any]:
    return shared_lines(platform) + extra_payloads(platform)


@cache
def simulated() -> tuple[tuple[SimEvent, ...], AccountIndex]:
    clients = load_clients(ROOT / "clients.example.toml")
    return tuple(Simulator(clients, seed=3, start_ms=1_790_000_000_000).events(3000)), AccountIndex.build(clients)


def batch_agrees(platform: str, payloads: list[Any], idx: AccountIndex, source: str = "stream",
                 via: str | None = None) -> None:
    """One raw record holding ``payloads``: its rows and reasons, payload by payload, are
    what ``normalize`` gives for each payload alone."""
    value = b"[" + b",".join(orjson.dumps(p) for p in payloads) + b"]"
    headers = {"source": source, "received_at": str(RECEIVED_AT), "via_account": via or ""}
    out = normalize_records([RawRecord(f"raw.{platform}", 0, 7, platform, value, headers, 1)], idx, 1)
    assert len(out.archive_rows) == len(payloads)
    rows_i = [row for env in out.envelopes.values() for row in env.interactions]
    want_i: list[Any] = []
    dead = iter(out.dead_letters)
    for payload, archived in zip(payloads, out.archive_rows, strict=True):
        data = orjson.loads(orjson.dumps(payload))
        one = normalize(platform, data, Arrival(platform, source, RECEIVED_AT, archived[1], via), idx)
        outcome, reason = archived[9], archived[10]
        if isinstance(one, DeadLetter):
            assert (outcome, reason) == ("dead", one.reason)
            assert next(dead)["reason"] == one.reason
        elif isinstance(one, Skipped):
            assert (outcome, reason) == ("skipped", one.reason)
        else:
            assert isinstance(one, Normalized)
            assert outcome == "ok" and archived[11] == len(one.interactions) + len(one.changes)
            want_i += [[getattr(i, f) for f in i.__slots__] for i in one.interactions]
    assert sorted(map(repr, rows_i)) == sorted(map(repr, want_i))


RECEIVED_AT = 1_790_000_000_000


def test_fixtures_agree_through_the_batch_path() -> None:
    for platform in PLATFORMS:
        for source, via in ARRIVALS:
            batch_agrees(platform, seeds(platform), index(), source, via)


def test_simulated_traffic_agrees_through_the_batch_path() -> None:
    events, idx = simulated()
    groups: dict[tuple[str, str, str | None], list[Any]] = {}
    for e in events:
        groups.setdefault((e.platform, e.source, e.via_account), []).append(e.payload)
    for (platform, source, via), payloads in groups.items():
        batch_agrees(platform, payloads, idx, source, via)


# --- mutated fixtures -----------------------------------------------------------------
SPECIAL = [
    "", " ", "  padded  ", "0", "12", "-3", "1.5", "t1_a", "t3_b", "t4_c", "at://", "did:plc:x",
    "at://did:plc:x/app.bsky.feed.post/1", "at://did:plc:brandaaaaaaaaaaaaaaaaaaa/app.bsky.feed.post/2",
    "did:plc:brandaaaaaaaaaaaaaaaaaaa", "did:plc:globexgggggggggggggggggg", "acme_official", "@acme", "ACME",
    "900001", "900777", "1001", "7007", "700001", "178400000000001", "Globex_HQ", "u/acme_official",
    "#darkmode", "darkmode", "acme", "r/acme", "2026-11-25T12:00:00Z", "2026-11-25T12:00:00",
    "1795608000", "soon", "create", "update", "delete", "commit", "post", "comment", "share", "reaction",
    "add", "remove", "edited", "hide", "follow", "favourite", "reblog", "mention", "status", "direct",
    "replied_to", "quoted", "retweeted", "MessageCreate", "[deleted]", "[removed]", "<p>hi &amp; bye</p>",
    "app.bsky.feed.like", "app.bsky.embed.record", "app.bsky.richtext.facet#mention",
]
plain = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats() | st.sampled_from(SPECIAL) | st.text(max_size=6)
)
values = st.recursive(
    plain, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(SPECIAL), inner, max_size=3),
    max_leaves=8,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(paths(v, (*prefix, i)))
    return out


def near(old: Any, new: Any, op: str) -> Any:
    """A replacement close to the old value, so the fast path reads on past it."""
    if op == "pad" and isinstance(old, str):
        return f" {old} "
    if op == "number" and isinstance(old, str) and old.strip().isdigit():
        return int(old)
    if op == "number" and isinstance(old, int | float) and not isinstance(old, bool):
        return float(old) if isinstance(old, int) else int(old) if math.isfinite(old) else str(old)
    if op == "text" and not isinstance(old, dict | list):
        return str(old)
    if op == "json":
        return json.dumps(old)
    if op == "wrap":
        return [old]
    if op == "empty":
        return type(old)() if isinstance(old, str | list | dict) else None
    return new


def mutate(payload: Any, path: tuple[Any, ...], op: str, new: Any) -> Any:
    payload = copy.deepcopy(payload)
    if not path:
        return near(payload, new, op)
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "delete" and isinstance(parent, dict):
        del parent[last]
    else:
        parent[last] = near(parent[last], new, op)
    return payload


OPS = ["delete", "replace", "pad", "number", "text", "json", "wrap", "empty"]


@SETTINGS
@given(data=st.data(), platform=st.sampled_from(PLATFORMS), where=st.sampled_from(ARRIVALS))
def test_mutated_fixtures_agree(data: st.DataObject, platform: str, where: tuple[str, str | None]) -> None:
    payload = data.draw(st.sampled_from(seeds(platform)))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(paths(payload)))
        payload = mutate(payload, path, data.draw(st.sampled_from(OPS)), data.draw(values))
    if _json_safe(payload):
        batch_agrees(platform, [payload], index(), *where)


def _json_safe(value: Any) -> bool:
    """orjson refuses NaN/inf as such (writes null) and integers beyond 64 bits."""
    try:
        return orjson.loads(orjson.dumps(value)) == value
    except (orjson.JSONEncodeError, TypeError):
        return False


# --- whole batches --------------------------------------------------------------------
def batch_records(events: tuple[SimEvent, ...]) -> list[RawRecord]:
    groups: dict[tuple[str, str, str], list[bytes]] = {}
    for e in events:
        groups.setdefault((e.platform, e.source, e.via_account or ""), []).append(orjson.dumps(e.payload))
    out = []
    for n, ((platform, source, via), bodies) in enumerate(sorted(groups.items())):
        value = b"[" + b",".join(bodies) + b"]"
        headers = {"source": source, "received_at": "1790000000000", "via_account": via}
        out.append(RawRecord(f"raw.{platform}", n % 4, 0, platform, value, headers, 1))
    return out


@pytest.mark.parametrize("enabled", [True, False])
def test_a_batch_leaves_the_collector_as_it_found_it(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        normalize_records(batch_records(simulated()[0][:50]), simulated()[1], 1)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


# --- status HTML ----------------------------------------------------------------------
HTML_PARTS = [
    "<p>", "</p>", "<br>", "<br/>", "<br />", "<BR>", "</P >", "<p/>", "</br>", "<li>", "<h2>", "<pre>",
    '<a href="https://x.example/?a=1&amp;b=2" class="u-url mention" rel="nofollow noopener">', "</a>",
    '<span class="h-card" translate="no">', "</span>", '<a href=x>', '<a  href="x">', '<a title="a > b">',
    "<script>", "</script>", "<style>", "<textarea>", "<!-- c -->", "<img src=\"x\">", "</>", "< p>",
    "hello", " ", "\n", "@", "&amp;", "&", "&#39;", "<", ">", "x<y", "\xa0", "<p\xa0class=\"x\">",
]


@SETTINGS
@given(st.lists(st.sampled_from(HTML_PARTS) | st.text(max_size=4), max_size=10))
def test_plain_text_is_html_to_text(parts: list[str]) -> None:
    html = "".join(parts)
    assert plain_text(html) == html_to_text(html)
