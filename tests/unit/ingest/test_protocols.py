"""The agents' pure parts: stream framing, URLs, rules, relevance, keys and webhook checks."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from pydantic import SecretStr

from streams.clients import parse_clients
from streams.ingest.bluesky import Relevance, jetstream_url
from streams.ingest.httpio import json_lines, sse_events
from streams.ingest.mastodon import event_key, plan_readers, rest_key
from streams.ingest.reddit import plan_listings
from streams.ingest.webhooks import route, signature_ok, verify_challenge
from streams.ingest.x import snowflake_ms, stream_rules
from streams.settings import Settings

BRAND = "did:plc:brandaaaaaaaaaaaaaaaaaaa"
CLIENTS = parse_clients(f"""
[[clients]]
id = "acme"
[[clients.accounts]]
platform = "bluesky"
account_id = "{BRAND}"
listen = ["#AcmeCoffee"]
[[clients.accounts]]
platform = "x"
account_id = "900001"
handle = "@acme"
listen = ["#acmecoffee", "acme lang:en"]
[[clients.accounts]]
platform = "mastodon"
account_id = "1001"
handle = "acme"
listen = ["#AcmeCoffee"]
[[clients.accounts]]
platform = "reddit"
account_id = "acme_official"
listen = ["r/acme", "/r/AcmeFans"]
[[clients]]
id = "globex"
[[clients.accounts]]
platform = "mastodon"
account_id = "7007"
handle = "globex@other.example"
[[clients.accounts]]
platform = "reddit"
account_id = "Globex_HQ"
listen = ["r/acme"]
""")


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _collect(gen: AsyncIterator[object]) -> list[object]:
    return [item async for item in gen]


@pytest.mark.anyio
async def test_sse_events_join_data_lines_and_skip_heartbeats() -> None:
    body = (b":thump\n\nevent: update\ndata: {\"id\":\"1\"}\n\n: keep-alive\r\n\r\n"
            b"event: delete\ndata: 42\n\nevent: notification\ndata: {\"a\":\ndata: 1}\n\ndata: tail")
    response = httpx.Response(200, content=_chunks(body[:17], body[17:60], body[60:]))
    events = await _collect(sse_events(response))
    assert events == [("update", '{"id":"1"}'), ("delete", "42"), ("notification", '{"a":\n1}'),
                      ("message", "tail")]


@pytest.mark.anyio
async def test_json_lines_skip_keep_alive_newlines() -> None:
    response = httpx.Response(200, content=_chunks(b"\r\n", b'{"data":{"id":"1"}}\r\n\r\n{"da', b'ta":{}}\r\n'))
    assert await _collect(json_lines(response)) == [b'{"data":{"id":"1"}}', b'{"data":{}}']


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_jetstream_url_asks_for_the_four_collections_and_the_cursor() -> None:
    url = jetstream_url("wss://jet.example/subscribe?compress=false&cursor=1", 1_700_000_000_000_000, ["did:plc:a"])
    query = parse_qs(urlsplit(url).query)
    assert query["wantedCollections"] == ["app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.feed.repost",
                                          "app.bsky.graph.follow"]
    assert query["cursor"] == ["1700000000000000"] and query["wantedDids"] == ["did:plc:a"]
    assert query["compress"] == ["false"]
    assert "cursor" not in parse_qs(urlsplit(jetstream_url("ws://h/subscribe", None, [])).query)


def test_bluesky_relevance_keeps_what_can_concern_a_tracked_account() -> None:
    relevance = Relevance(CLIENTS)

    def wants(event: dict[str, object]) -> bool:
        return relevance.wants(orjson.dumps(event), event)

    reply = {"did": "did:plc:alice", "kind": "commit", "commit": {"operation": "create", "record": {
        "reply": {"parent": {"uri": f"at://{BRAND}/app.bsky.feed.post/1"}}}}}
    tagged = {"did": "did:plc:bob", "kind": "commit", "commit": {"operation": "create", "record": {
        "text": "my #acmecoffee"}}}
    noise = {"did": "did:plc:carol", "kind": "commit", "commit": {"operation": "create", "record": {"text": "hi"}}}
    delete = {"did": "did:plc:alice", "kind": "commit", "commit": {"operation": "delete", "rkey": "1"}}
    assert wants(reply) and wants(tagged) and not wants(noise)
    assert not wants(delete)  # alice has not dealt with the brand yet
    relevance.authors.add("did:plc:alice")
    assert wants(delete)


def test_x_rules_follow_the_accounts_and_their_listened_queries() -> None:
    rules = stream_rules(CLIENTS)
    assert [(r.value, r.tag, r.source) for r in rules] == [
        ("from:900001 OR to:900001 OR retweets_of:900001 OR @acme", "rapport:account:900001", "stream"),
        ("#acmecoffee", "#acmecoffee", "listen:#acmecoffee"),
        ("acme lang:en", "acme lang:en", "listen:acme lang:en"),
    ]
    minted = 1_795_608_000_123  # an id's top bits count ms since X's epoch (2010-11-04T01:42:54.657Z)
    assert snowflake_ms(((minted - 1288834974657) << 22) + 4095) == minted


def test_mastodon_tokens_per_account_and_tags_with_any_token() -> None:
    settings = Settings(mastodon_url="https://social.example/", mastodon_access_tokens={"1001": SecretStr("t1")},
                        mastodon_urls={"7007": "https://other.example"})
    readers, notes = plan_readers(settings, CLIENTS)
    assert [(r.part, r.server, r.account_id, r.tag) for r in readers] == [
        ("user:1001", "https://social.example", "1001", None),
        ("#acmecoffee", "https://social.example", None, "acmecoffee")]
    assert notes == ["mastodon: no access token for account 7007 (set RAPPORT_MASTODON_ACCESS_TOKEN or "
                     "RAPPORT_MASTODON_ACCESS_TOKENS); its notifications are not read"]
    both = Settings(mastodon_access_token=SecretStr("t"), mastodon_access_tokens={"globex": SecretStr("t2")})
    readers, notes = plan_readers(both, CLIENTS)
    assert {r.part for r in readers} == {"user:7007", "user:1001", "#acmecoffee"} and notes == []
    assert plan_readers(Settings(), CLIENTS)[0] == []


def test_mastodon_keys_name_notifications_statuses_and_deletes() -> None:
    assert event_key("notification", '{"id":"5","created_at":"2026-11-25T12:00:00Z"}') == ("n:5", 1795608000.0)
    assert event_key("update", '{"id":"9"}') == ("s:9", None)
    assert event_key("delete", "9") == ("d:9", None)
    assert event_key("status.update", '{"id":"9","edited_at":"x"}')[0] == "e:9:x"
    assert event_key("filters_changed", "") == (None, None)
    assert rest_key({"id": "5", "type": "mention", "status": {}}) == "n:5"
    assert rest_key({"id": "9", "content": "<p>hi</p>"}) == "s:9"


def test_reddit_listings_need_a_password_for_an_inbox_and_share_subreddits() -> None:
    settings = Settings(reddit_client_id="app", reddit_client_secret=SecretStr("s"),
                        reddit_passwords={"ACME_Official": SecretStr("pw")})
    listings, notes = plan_listings(settings, CLIENTS)
    assert [(x.path, x.source, x.via, x.token.label) for x in listings] == [
        ("/message/inbox", "inbox", "acme_official", "u/acme_official"),
        ("/message/mentions", "inbox", "acme_official", "u/acme_official"),
        ("/r/acme/new", "listen:r/acme", "", "u/acme_official"),
        ("/r/acme/comments", "listen:r/acme", "", "u/acme_official"),
        ("/r/acmefans/new", "listen:r/acmefans", "", "u/acme_official"),
        ("/r/acmefans/comments", "listen:r/acmefans", "", "u/acme_official"),
    ]
    assert listings[0].seen is listings[1].seen  # inbox and mentions overlap
    assert notes == ["reddit: no password for u/Globex_HQ (RAPPORT_REDDIT_PASSWORDS); its inbox is not polled"]
    app_only, _ = plan_listings(Settings(reddit_client_id="app", reddit_client_secret=SecretStr("s")), CLIENTS)
    assert {x.token.label for x in app_only} == {"app-only"} and all(x.source != "inbox" for x in app_only)


def test_webhook_signature_is_the_hmac_of_the_raw_body() -> None:
    body = b'{"object":"page","entry":[]}'
    good = "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert signature_ok(body, good, [b"secret"])
    assert signature_ok(body, good.upper().replace("SHA256=", "sha256="), [b"secret"])
    assert signature_ok(body, good, [b"other", b"secret"])  # either app's secret
    assert not signature_ok(body + b" ", good, [b"secret"])
    assert not signature_ok(body, good, [b"other"])
    assert not signature_ok(body, None, [b"secret"])
    assert not signature_ok(body, good.removeprefix("sha256="), [b"secret"])
    assert not signature_ok(body, "sha256=", [b"secret"])
    assert not signature_ok(body, good, [])


def test_webhook_verification_and_routing() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "123"}
    assert verify_challenge(query, "tok") == "123"
    assert verify_challenge(query, "other") is None
    assert verify_challenge(query, None) is None
    assert verify_challenge({**query, "hub.mode": "unsubscribe"}, "tok") is None
    assert route(b'{"object":"page","entry":[{"id":"7"},{"id":"7"}]}') == ("facebook", "7", "")
    assert route(b'{"object":"instagram","entry":[{"id":"1"},{"id":"2"}]}') == ("instagram", "", "")
    assert route(b'{"object":"user","entry":[]}')[0] is None
    assert route(b"not json") == (None, "", "not JSON")
