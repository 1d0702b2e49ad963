"""The traffic simulator: deterministic, native payload shapes, a realistic traffic model.

Everything is checked on the payloads themselves (parsed here, independently of the
simulator's internals), so a test fails when the stream stops looking like the platform.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest

from streams.clients import ClientsFile, parse_clients
from streams.simulator.traffic import SimEvent, Simulator, payloads_by_platform
from tests.unit.normalize.support import SHARED  # shared/ beside the checkout, found from any depth

START = 1_795_618_800_000  # 2026-11-25T15:00:00Z: a Wednesday, 10:00 in New York
BRAND_DID = "did:plc:brandaaaaaaaaaaaaaaaaaaa"
CLIENTS = """
[[clients]]
id = "acme"
name = "Acme Coffee"
timezone = "America/New_York"
sla_minutes = 60
[clients.hours]
mon = "09:00-17:00"
tue = "09:00-17:00"
wed = "09:00-17:00"
thu = "09:00-17:00"
fri = "09:00-17:00"
[[clients.accounts]]
platform = "bluesky"
account_id = "did:plc:brandaaaaaaaaaaaaaaaaaaa"
handle = "acme.example"
listen = ["#coffee"]
[[clients.accounts]]
platform = "reddit"
account_id = "acme_official"
handle = "acme_official"
listen = ["r/acme"]
[[clients.accounts]]
platform = "mastodon"
account_id = "1001"
handle = "acme@social.example"
listen = ["#coffee"]
[[clients.accounts]]
platform = "x"
account_id = "900001"
handle = "acme"
listen = ["#coffee"]

[[clients]]
id = "globex"
name = "Globex Outdoor"
timezone = "Europe/Berlin"
[[clients.accounts]]
platform = "facebook"
account_id = "700001"
handle = "Globex"
[[clients.accounts]]
platform = "instagram"
account_id = "178400000000001"
handle = "globex"
[[clients.accounts]]
platform = "reddit"
account_id = "globex_help"
handle = "globex_help"
"""
PLATFORMS = ("bluesky", "reddit", "mastodon", "x", "facebook", "instagram")


@cache
def clients() -> ClientsFile:
    return parse_clients(CLIENTS, "test clients")


@cache
def stream(count: int = 4000, seed: int = 7, **kw: Any) -> tuple[SimEvent, ...]:
    return tuple(Simulator(clients(), seed=seed, start_ms=START, **kw).events(count))


# --- reading the payloads back --------------------------------------------------------

class Ref(NamedTuple):
    """What one payload says about ids: its own, its parent's, others it points at."""

    own: str | None
    parent: str | None
    author: str | None
    root: str | None
    others: tuple[str, ...]


def status_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    if payload["event"] == "delete":
        return None
    body = json.loads(payload["payload"])
    return body if payload["event"] != "notification" else body.get("status")


def refs(event: SimEvent) -> Ref:
    p = event.payload
    if event.platform == "bluesky":
        if p["kind"] != "commit":
            return Ref(None, None, p["did"], None, ())
        c = p["commit"]
        uri = f"at://{p['did']}/{c['collection']}/{c['rkey']}"
        if c["operation"] == "delete":
            return Ref(None, None, p["did"], None, (uri,))
        record = c["record"]
        if c["collection"] == "app.bsky.feed.post":
            reply = record.get("reply")
            if reply:
                return Ref(uri, reply["parent"]["uri"], p["did"], reply["root"]["uri"], ())
            return Ref(uri, None, p["did"], uri, ())
        subject = record["subject"]
        pointed = (subject["uri"],) if isinstance(subject, dict) else ()
        return Ref(uri, None, p["did"], None, pointed)
    if event.platform == "reddit":
        d = p["data"]
        if p["kind"] == "t3":
            return Ref(d["name"], None, d["author"], d["name"], ())
        root = d.get("link_id") or "t3_" + d["context"].split("/comments/")[1].split("/")[0]
        return Ref(d["name"], d["parent_id"], d["author"], root, ())
    if event.platform == "mastodon":
        if p["event"] == "delete":
            return Ref(None, None, None, None, (p["payload"],))
        status = status_of(p)
        body = json.loads(p["payload"])
        if p["event"] == "notification" and body["type"] != "mention":
            return Ref(None, None, body["account"]["id"], None,
                       (status["id"],) if status else ())
        if p["event"] == "status.update":
            return Ref(None, None, None, None, (status["id"],))
        return Ref(status["id"], status["in_reply_to_id"], status["account"]["id"], None, ())
    if event.platform == "x":
        d = p["data"]
        parent = next((r["id"] for r in d.get("referenced_tweets", [])
                       if r["type"] == "replied_to"), None)
        others = tuple(r["id"] for r in d.get("referenced_tweets", []) if r["type"] != "replied_to")
        return Ref(d["id"], parent, d["author_id"], d["conversation_id"], others)
    change = p["entry"][0]["changes"][0]
    v = change["value"]
    if event.platform == "facebook":
        if v["item"] == "status":
            return Ref(v["post_id"], None, v["from"]["id"], v["post_id"], ())
        if v["item"] == "reaction" or v["verb"] == "remove":
            return Ref(None, None, v["from"]["id"], None, (v["parent_id"], v["post_id"]))
        return Ref(v["comment_id"], v["parent_id"], v["from"]["id"], v["post_id"], ())
    if change["field"] == "mentions":
        return Ref(v["comment_id"], None, None, None, ())
    return Ref(v["id"], v.get("parent_id"), v["from"]["id"], v["media"]["id"], ())


# --- determinism ----------------------------------------------------------------------

def test_same_seed_gives_the_same_stream_and_another_seed_another() -> None:
    first = list(Simulator(clients(), seed=3, start_ms=START).events(800))
    again = list(Simulator(clients(), seed=3, start_ms=START).events(800))
    other = list(Simulator(clients(), seed=4, start_ms=START).events(800))
    assert first == again
    assert [e.payload for e in first] != [e.payload for e in other]


def test_a_shorter_stream_is_a_prefix_and_events_can_be_drawn_twice() -> None:
    sim = Simulator(clients(), seed=3, start_ms=START)
    assert list(sim.events(300)) == list(sim.events(600))[:300]


def test_payloads_are_json_and_grouped_per_platform() -> None:
    events = stream()
    grouped = payloads_by_platform(events)
    assert set(grouped) == set(PLATFORMS)
    assert sum(len(v) for v in grouped.values()) == len(events)
    for event in events[:500]:
        assert json.loads(json.dumps(event.payload)) == event.payload


def test_only_the_platforms_of_the_clients_file() -> None:
    text = CLIENTS.split("[[clients]]\nid = \"globex\"")[0]
    sim = Simulator(parse_clients(text), seed=1, start_ms=START)
    assert {e.platform for e in sim.events(1500)} == {"bluesky", "reddit", "mastodon", "x"}


def test_event_time_advances_at_the_mean_gap() -> None:
    events = stream()
    times = sorted(e.event_ms for e in events)
    assert times[0] >= START
    mean_gap = (times[-1] - times[0]) / len(events)
    assert 1_000 < mean_gap < 3_500  # default ~2 s of event time per event
    slow = list(Simulator(clients(), seed=7, start_ms=START, mean_gap_ms=20_000).events(1500))
    assert (max(e.event_ms for e in slow) - START) / 1500 > 10_000


def test_constructor_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Simulator(clients(), answer_rate=1.5)
    with pytest.raises(ValueError):
        Simulator(clients(), people_per_account=1)


# --- native shapes --------------------------------------------------------------------

def flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    """Key paths to value types; list elements share the path ``<list>[]``."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = f"{prefix}.{key}" if prefix else key
            out[path] = type(value).__name__
            out.update(flatten(value, path))
    elif isinstance(obj, list):
        if not obj:
            out[prefix] = "empty"
        for item in obj:
            out.update(flatten(item, prefix + "[]"))
    return out


def decoded(platform: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Fixtures show Mastodon payloads decoded; the simulator sends JSON strings."""
    body = payload.get("payload")
    if platform == "mastodon" and isinstance(body, str) and payload["event"] != "delete":
        return {**payload, "payload": json.loads(body)}
    return payload


def signature(platform: str, p: dict[str, Any]) -> tuple[Any, ...] | None:
    """Which fixture line a payload should look like; None: a shape we never send."""
    if platform == "bluesky":
        if p["kind"] != "commit":
            return (p["kind"],)
        c = p["commit"]
        record = c.get("record", {})
        if "entities" in record:
            return None  # the deprecated form: older records only
        return (c["operation"], c["collection"], "reply" in record, "facets" in record)
    if platform == "reddit":
        d = p["data"]
        return (p["kind"], "link_id" in d, d["author"] == "[deleted]")
    if platform == "mastodon":
        body = p["payload"]
        if p["event"] == "notification":
            return ("notification", body["type"])
        if p["event"] == "update":
            return ("update", body["in_reply_to_id"] is None)
        return (p["event"],)
    if platform == "x":
        d = p["data"]
        if isinstance(d, list):
            return None  # a search response; the filtered stream sends one post
        return (tuple(r["type"] for r in d.get("referenced_tweets", [])), "entities" in d)
    change = p["entry"][0]["changes"][0]
    v = change["value"]
    if platform == "facebook":
        return (v["item"], v["verb"], v.get("parent_id") == v.get("post_id"))
    return (change["field"], "parent_id" in v)


def compatible(fixture: str, ours: str) -> bool:
    fixture, ours = (("list" if k == "empty" else k) for k in (fixture, ours))
    return fixture == ours or "NoneType" in (fixture, ours) or {fixture, ours} <= {"int", "float"}


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared fixtures not present")
@pytest.mark.parametrize("platform", PLATFORMS)
def test_payloads_have_the_fixtures_keys_and_types(platform: str) -> None:
    files = {"bluesky": "bluesky_jetstream", "mastodon": "mastodon_streaming",
             "x": "x_api_v2", "facebook": "facebook_webhooks", "instagram": "instagram_webhooks",
             "reddit": "reddit"}
    lines = (SHARED / f"{files[platform]}.jsonl").read_text(encoding="utf-8").splitlines()
    ours: dict[tuple[Any, ...], list[dict[str, str]]] = defaultdict(list)
    for event in stream(6000):
        if event.platform == platform:
            payload = decoded(platform, event.payload)
            sig = signature(platform, payload)
            assert sig is not None, payload
            ours[sig].append(flatten(payload))
    for line in filter(None, lines):
        fixture = decoded(platform, json.loads(line))
        sig = signature(platform, fixture)
        if sig is None:
            continue
        assert ours.get(sig), f"no simulated {platform} payload shaped like {line[:120]}"
        want = flatten(fixture)
        for have in ours[sig]:
            for path, kind in want.items():
                listed = path.split("[]")[0]
                if "[]" in path and have.get(listed) == "empty":
                    continue
                assert path in have, f"{platform} {sig}: {path} missing"
                assert compatible(kind, have[path]), f"{platform} {sig}: {path} {have[path]}"


def test_bluesky_commits_and_at_uris() -> None:
    for event in stream():
        if event.platform != "bluesky":
            continue
        p = event.payload
        assert p["did"].startswith("did:plc:") and isinstance(p["time_us"], int)
        assert event.event_ms == p["time_us"] // 1000
        if p["kind"] != "commit":
            assert p["kind"] in ("identity", "account")
            continue
        assert p["commit"]["collection"].startswith(("app.bsky.feed.", "app.bsky.graph."))
        reply = p["commit"].get("record", {}).get("reply")
        if reply:
            for ref in (reply["root"], reply["parent"]):
                assert ref["uri"].startswith("at://did:plc:")
                assert ref["uri"].split("/")[3] == "app.bsky.feed.post"
                assert ref["cid"].startswith("bafyrei")


def test_mention_facets_slice_the_utf8_text_to_the_handle() -> None:
    handles = {BRAND_DID: "acme.example"}
    for event in stream():
        p = event.payload
        if event.platform == "bluesky" and p["kind"] == "identity":
            handles[p["did"]] = p["identity"]["handle"]
    sliced = non_ascii = 0
    for event in stream():
        record = event.payload.get("commit", {}).get("record", {})
        text = record.get("text", "")
        for facet in record.get("facets", []):
            raw = text.encode()[facet["index"]["byteStart"]:facet["index"]["byteEnd"]].decode()
            feature = facet["features"][0]
            if feature["$type"].endswith("#tag"):
                assert raw == "#" + feature["tag"]
                continue
            assert raw.startswith("@") and " " not in raw
            if feature["did"] in handles:
                assert raw == "@" + handles[feature["did"]]
            sliced += 1
            non_ascii += len(text.encode()) != len(text)
    assert sliced > 50 and non_ascii > 5  # byte and character offsets really differ


def test_x_mentions_and_replies() -> None:
    for event in stream():
        if event.platform != "x":
            continue
        d = event.payload["data"]
        assert {"id", "text", "author_id", "conversation_id", "created_at"} <= set(d)
        assert event.payload["includes"]["users"][0]["id"] == d["author_id"]
        for m in d.get("entities", {}).get("mentions", []):
            assert d["text"][m["start"]:m["end"]] == "@" + m["username"]
        if any(r["type"] == "replied_to" for r in d.get("referenced_tweets", [])):
            assert d["in_reply_to_user_id"] and d["conversation_id"] != d["id"]


def test_reddit_things() -> None:
    kinds = Counter()
    for event in stream():
        if event.platform != "reddit":
            continue
        p = event.payload
        d = p["data"]
        kinds[p["kind"], event.source] += 1
        assert d["name"] == f"{p['kind']}_{d['id']}"
        assert isinstance(d["created_utc"], float)
        if p["kind"] == "t1":
            assert d["parent_id"].startswith(("t1_", "t3_"))
            if event.source == "inbox":  # inbox items name the submission by their context
                assert "link_id" not in d and "/comments/" in d["context"]
                assert event.via_account == "globex_help"
            else:
                assert d["link_id"].startswith("t3_")
        if event.source.startswith("listen:"):
            assert event.source == "listen:r/acme" and d["subreddit"] == "acme"
    assert kinds["t3", "listen:r/acme"] and kinds["t1", "listen:r/acme"] and kinds["t1", "inbox"]
    authors = [e.payload["data"]["author"] for e in stream() if e.platform == "reddit"]
    assert "[deleted]" in authors
    bodies = [e.payload["data"].get("body", "") for e in stream() if e.platform == "reddit"]
    assert any("u/acme_official" in b for b in bodies)


def test_mastodon_payloads_are_json_strings() -> None:
    events = Counter()
    for event in stream():
        if event.platform != "mastodon":
            continue
        p = event.payload
        assert isinstance(p["payload"], str)
        events[p["event"], json.loads(p["payload"]).get("type") if p["event"] == "notification"
               else None] += 1
        if event.source == "stream":
            assert event.via_account == "1001"
        status = status_of(p)
        if status is None:
            continue
        assert status["id"] and status["account"]["id"] and status["created_at"].endswith("Z")
        assert status["content"].startswith("<p>")
        if status["in_reply_to_id"]:
            assert status["in_reply_to_account_id"]
    for want in [("update", None), ("delete", None), ("notification", "mention"),
                 ("notification", "favourite"), ("notification", "reblog"),
                 ("notification", "follow")]:
        assert events[want], want


def test_webhook_deliveries() -> None:
    fields = Counter()
    for event in stream():
        if event.platform not in ("facebook", "instagram"):
            continue
        p = event.payload
        assert p["object"] == ("page" if event.platform == "facebook" else "instagram")
        entry = p["entry"][0]
        assert event.source == "webhook" and event.via_account == entry["id"]
        change = entry["changes"][0]
        fields[event.platform, change["field"], change["value"].get("item")] += 1
        if event.platform == "facebook" and change["value"]["item"] == "comment":
            assert change["value"]["post_id"].startswith("700001_")
    assert fields["facebook", "feed", "comment"] and fields["facebook", "feed", "reaction"]
    assert fields["instagram", "comments", None] and fields["instagram", "mentions", None]


# --- ids and order --------------------------------------------------------------------

def test_ids_are_unique_and_references_point_at_generated_ids() -> None:
    window = 32
    events = stream(4000 + window)
    own = [refs(e).own for e in events]
    ids = [i for i in own if i is not None]
    assert len(ids) == len(set(ids))
    known = set(ids)
    checked = 0
    for event in events[:4000]:
        ref = refs(event)
        pointed = [*ref.others, *([ref.parent] if ref.parent else [])]
        if ref.root and event.platform not in ("instagram", "mastodon"):
            pointed.append(ref.root)  # Instagram media are never delivered themselves
        for target in pointed:
            assert target in known, (event.platform, target)
            checked += 1
    assert checked > 1000


def out_of_order(events: tuple[SimEvent, ...]) -> tuple[int, int, int]:
    """(replies whose parent is in the stream, those emitted first, the largest lead)."""
    position = {}
    for i, event in enumerate(events):
        own = refs(event).own
        if own:
            position[own] = i
    replies = early = lead = 0
    for i, event in enumerate(events):
        parent = refs(event).parent
        if parent in position:
            replies += 1
            if position[parent] > i:
                early += 1
                lead = max(lead, position[parent] - i)
    return replies, early, lead


def test_a_fraction_of_replies_arrive_before_their_parent() -> None:
    replies, early, lead = out_of_order(stream(6000))
    assert replies > 1000
    assert 0.03 < early / replies < 0.07
    assert lead <= 32 + 8  # the window, plus the few that overtook inside it meanwhile
    replies, early, _ = out_of_order(stream(6000, reorder_rate=0.0))
    assert early == 0


# --- the traffic model ----------------------------------------------------------------

def bluesky_exchanges(
    events: tuple[SimEvent, ...],
) -> tuple[set[str], set[str], dict[str, set[str]]]:
    """Inbound messages to the brand, those it answered, and per person the threads in
    which they had a conversation with the brand (addressed it and were answered)."""
    by_uri: dict[str, Ref] = {}
    inbound: set[str] = set()
    for event in events:
        if event.platform != "bluesky" or event.payload["kind"] != "commit":
            continue
        ref = refs(event)
        if ref.own is None or "app.bsky.feed.post" not in ref.own:
            continue
        by_uri[ref.own] = ref
        record = event.payload["commit"]["record"]
        mentions = {f["features"][0].get("did") for f in record.get("facets", [])}
        to_brand = (ref.parent or "").startswith(f"at://{BRAND_DID}/") or BRAND_DID in mentions
        if ref.author != BRAND_DID and to_brand:
            inbound.add(ref.own)
    answered: set[str] = set()
    talks: dict[str, set[str]] = defaultdict(set)
    for ref in by_uri.values():
        if ref.author == BRAND_DID and ref.parent in inbound:
            answered.add(ref.parent)
            person = by_uri[ref.parent].author
            assert person is not None and ref.root is not None
            talks[person].add(ref.root)
    return inbound, answered, talks


def test_the_brand_answers_some_inbound_messages_and_not_others() -> None:
    inbound, answered, _ = bluesky_exchanges(stream(6000))
    assert len(inbound) > 100
    assert 0.2 < len(answered) / len(inbound) < 0.8
    # Answers come seconds to a day later, so some are still due when the stream ends.
    eager, eager_answered, _ = bluesky_exchanges(stream(4000, answer_rate=1.0))
    shy, shy_answered, _ = bluesky_exchanges(stream(3000, answer_rate=0.0))
    assert len(eager_answered) / len(eager) > 0.5
    assert not shy_answered and shy


def test_answer_delays_range_from_seconds_to_hours() -> None:
    events = stream(6000, seed=11, answer_rate=1.0)
    times = {refs(e).own: e.event_ms for e in events if e.platform == "x"}
    delays = []
    for event in events:
        if event.platform == "x" and event.payload["data"]["author_id"] == "900001":
            parent = refs(event).parent
            if parent in times:
                delays.append(event.event_ms - times[parent])
    assert min(delays) < 60_000 and max(delays) > 60 * 60_000


def test_the_brand_answers_within_its_business_hours() -> None:
    zone = ZoneInfo("America/New_York")
    events = stream(2500, mean_gap_ms=60_000)  # about two days of event time
    answers = [e for e in events if e.platform == "bluesky" and e.payload["did"] == BRAND_DID
               and e.payload["kind"] == "commit" and refs(e).parent]
    assert len(answers) > 20
    for event in answers:
        local = datetime.fromtimestamp(event.event_ms / 1000, zone)
        assert local.weekday() < 5 and 9 <= local.hour < 17, local


def test_returning_people_talk_to_the_brand_in_several_threads() -> None:
    _, _, talks = bluesky_exchanges(stream(6000))
    assert any(len(threads) >= 2 for threads in talks.values())


def test_nested_chains_and_people_talking_among_themselves() -> None:
    depth: dict[str, int] = {}
    author: dict[str, str | None] = {}
    person_to_person = 0
    for event in stream():
        if event.platform != "reddit":
            continue
        ref = refs(event)
        assert ref.own is not None
        depth[ref.own] = depth.get(ref.parent or "", -1) + 1 if ref.parent else 0
        author[ref.own] = ref.author
        brand = ("acme_official", "globex_help")
        if ref.parent in author and ref.author not in brand and author[ref.parent] not in brand:
            person_to_person += 1
    assert max(depth.values()) >= 3 and person_to_person > 20


def test_signals_outnumber_replies() -> None:
    signals = replies = 0
    for event in stream():
        if event.platform == "bluesky" and event.payload["kind"] == "commit":
            collection = event.payload["commit"]["collection"]
            if event.payload["commit"]["operation"] != "create":
                continue
            if collection == "app.bsky.feed.post":
                replies += refs(event).parent is not None
            else:
                signals += 1
    assert signals > replies > 0


def test_the_real_normalizers_read_every_payload() -> None:
    registry = pytest.importorskip("streams.normalize.registry")
    base = pytest.importorskip("streams.normalize.base")
    index = base.AccountIndex.build(clients())
    outcomes = Counter()
    for i, event in enumerate(stream()):
        arrival = base.Arrival(event.platform, event.source, event.event_ms, f"sim-{i}",
                               event.via_account)
        outcome = registry.normalize(event.platform, event.payload, arrival, index)
        assert not isinstance(outcome, base.DeadLetter), (outcome, event)
        outcomes[event.platform, type(outcome).__name__] += 1
    for platform in PLATFORMS:
        assert outcomes[platform, "Normalized"] > 0
