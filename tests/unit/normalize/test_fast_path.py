"""The fast path (streams/normalize/fast/) gives exactly what the checked path gives.

``normalize`` tries a platform's fast normalizer first and runs the checked one when the
fast one gives up; ``normalize_checked`` runs the checked one alone. They must agree on
every payload: same rows in the same order, same skip and dead-letter reasons. Fixtures
and simulated traffic check the common shapes, mutated fixtures the edges (a mutation the
fast path does not expect must make it give up, never give another answer), and a whole
batch through ``normalize_records`` must be byte-identical with the fast path switched off.
"""

from __future__ import annotations

import copy
import gc
import json
import math
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streams.normalize.records as records_module
from streams.clients import load_clients
from streams.ingest.simulate import SimEvent, Simulator
from streams.normalize.base import AccountIndex, Arrival
from streams.normalize.fast import FAST
from streams.normalize.fast.core import Context, attempt, tables_for
from streams.normalize.fast.mastodon import plain_text
from streams.normalize.mastodon import html_to_text
from streams.normalize.records import RawRecord, normalize_records
from streams.normalize.registry import normalize, normalize_checked
from tests.unit.normalize.support import PLATFORMS, RECEIVED, extra_payloads, index, shared_lines

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


def arrival(platform: str, source: str, via: str | None) -> Arrival:
    return Arrival(platform, source, RECEIVED, f"raw-{platform}", via)


def same(platform: str, payload: Any, source: str = "stream", via: str | None = None) -> None:
    arr = arrival(platform, source, via)
    assert normalize(platform, payload, arr, index()) == normalize_checked(platform, payload, arr, index())


def seeds(platform: str) -> list[Any]:
    return shared_lines(platform) + extra_payloads(platform)


def fast_handles(platform: str, payload: Any, index: AccountIndex, source: str, via: str | None) -> bool:
    ctx = Context(tables_for(index, platform), source, RECEIVED, via)
    return attempt(FAST[platform], payload, ctx, "k") is not None


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize(("source", "via"), ARRIVALS)
def test_fixtures_agree(platform: str, source: str, via: str | None) -> None:
    for payload in seeds(platform):
        same(platform, payload, source, via)


def test_the_fast_path_reads_the_fixtures() -> None:
    """Most fixture lines take the fast path: the comparison above is not vacuous."""
    taken = Counter(
        fast_handles(p, payload, index(), "stream", None) for p in PLATFORMS for payload in seeds(p)
    )
    assert taken[True] > 2 * taken[False]


@cache
def simulated() -> tuple[tuple[SimEvent, ...], AccountIndex]:
    clients = load_clients(ROOT / "clients.example.toml")
    return tuple(Simulator(clients, seed=3, start_ms=1_790_000_000_000).events(3000)), AccountIndex.build(clients)


def test_simulated_traffic_agrees_and_takes_the_fast_path() -> None:
    events, idx = simulated()
    fast: Counter[str] = Counter()
    for i, e in enumerate(events):
        arr = Arrival(e.platform, e.source, 1_790_000_000_000 + i, f"sim-{i}", e.via_account)
        assert normalize(e.platform, e.payload, arr, idx) == normalize_checked(e.platform, e.payload, arr, idx), e
        fast[e.platform] += fast_handles(e.platform, e.payload, idx, e.source, e.via_account)
    count = Counter(e.platform for e in events)
    for platform in PLATFORMS:  # a fast path that always gave up would be correct, and slow
        assert fast[platform] >= 0.95 * count[platform], (platform, fast[platform], count[platform])


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
    same(platform, payload, *where)


@SETTINGS
@given(platform=st.sampled_from(PLATFORMS), payload=values)
def test_any_value_agrees(platform: str, payload: Any) -> None:
    same(platform, payload)


# --- whole batches --------------------------------------------------------------------
def batch_records(events: tuple[SimEvent, ...]) -> list[RawRecord]:
    groups: dict[tuple[str, str, str], list[bytes]] = {}
    for e in events:
        groups.setdefault((e.platform, e.source, e.via_account or ""), []).append(orjson.dumps(e.payload))
    for platform in PLATFORMS:  # fixtures too, some of them dead letters or skipped
        groups.setdefault((platform, "webhook", "700001"), []).extend(orjson.dumps(p) for p in seeds(platform))
    out = [RawRecord("raw.x", 0, 0, "x", b"{not json", {}, 5), RawRecord("raw.y", 0, 1, "myspace", b"[1]", {}, 5)]
    for n, ((platform, source, via), bodies) in enumerate(sorted(groups.items())):
        for i in range(0, len(bodies), 97):
            value = b"[" + b",".join(bodies[i:i + 97]) + b"]"
            headers = {"source": source, "received_at": "1790000000000", "via_account": via}
            out.append(RawRecord(f"raw.{platform}", n % 4, i, platform, value, headers, 1))
    return out


def test_batches_are_byte_identical_without_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    events, idx = simulated()
    recs = batch_records(events)
    fast = normalize_records(recs, idx, 1_790_000_000_123)
    monkeypatch.setattr(records_module, "FAST", {})
    fresh = AccountIndex.build(load_clients(ROOT / "clients.example.toml"))
    checked = normalize_records(recs, fresh, 1_790_000_000_123)
    assert fast.envelope_bytes() == checked.envelope_bytes()
    assert list(fast.envelopes) == list(checked.envelopes)
    assert fast.archive_rows == checked.archive_rows
    assert fast.dead_letters == checked.dead_letters
    assert (fast.payloads, fast.skipped, fast.events_out) == (checked.payloads, checked.skipped, checked.events_out)
    assert fast.skip_reasons == checked.skip_reasons
    assert fast.dead_letters and fast.skipped and fast.events_out


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
