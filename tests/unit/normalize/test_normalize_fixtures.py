"""Every line of the shared fixtures, normalized, against what the README says it means."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from streams.normalize.base import Normalized, Skipped
from streams.normalize.registry import normalize
from tests.unit.normalize.support import PLATFORMS, RECEIVED, arrival, index, shared_lines

BRAND = "did:plc:brandaaaaaaaaaaaaaaaaaaa"
ALICE = "did:plc:alicealicealicealiceali"
BSKY_ROOT = f"at://{BRAND}/app.bsky.feed.post/3lbpost0001"
ALICE_POST = f"at://{ALICE}/app.bsky.feed.post/3lapost0001"
ACME_BSKY = [("acme", BRAND)]
ACME_REDDIT = [("acme", "acme_official")]
ACME_MASTODON = [("acme", "1001")]
ACME_X = [("acme", "900001")]
ACME_FB = [("acme", "700001")]
ACME_IG = [("acme", "178400000000001")]


class Row(NamedTuple):
    kind: str
    event_id: str
    parent_id: str | None
    parent_author_id: str | None
    root_id: str | None
    author_id: str
    created_at: int
    targets: list[tuple[str, str]]
    mentioned: tuple[str, ...] = ()


class Chg(NamedTuple):
    change: str
    event_id: str
    changed_at: int
    author_id: str
    targets: list[tuple[str, str]]


class Skip(NamedTuple):
    reason: str


# How each platform's fixture lines arrive: Mastodon's come from the brand's own user
# stream and notifications, the webhooks through the brand's own subscription.
ARRIVALS = {
    "bluesky": ("stream", None),
    "reddit": ("stream", None),
    "mastodon": ("stream", "1001"),
    "x": ("stream", None),
    "facebook": ("webhook", None),
    "instagram": ("webhook", None),
}

EXPECTED: dict[str, list[Any]] = {
    "bluesky": [
        Row("post", BSKY_ROOT, None, None, BSKY_ROOT, BRAND, 1795608000000, ACME_BSKY),
        Row("reply", ALICE_POST, BSKY_ROOT, BRAND, BSKY_ROOT, ALICE, 1795608060000, ACME_BSKY,
            (BRAND,)),
        Row("reply", f"at://{BRAND}/app.bsky.feed.post/3lbpost0002", ALICE_POST, ALICE,
            BSKY_ROOT, BRAND, 1795608300000, ACME_BSKY),
        Row("like", "at://did:plc:bobbobbobbobbobbobbobbob/app.bsky.feed.like/3lblike0001",
            BSKY_ROOT, BRAND, None, "did:plc:bobbobbobbobbobbobbobbob", 1795608400000,
            ACME_BSKY),
        Row("mention", "at://did:plc:carolcarolcarolcarolcar/app.bsky.feed.post/3lcpost0001",
            None, None, "at://did:plc:carolcarolcarolcarolcar/app.bsky.feed.post/3lcpost0001",
            "did:plc:carolcarolcarolcarolcar", 1795608500000, ACME_BSKY, (BRAND,)),
        Row("follow", "at://did:plc:davedavedavedavedavedave/app.bsky.graph.follow/3ldfollow01",
            None, BRAND, None, "did:plc:davedavedavedavedavedave", 1795608600000, ACME_BSKY),
        # Alice deleting her reply: her DID is not tracked, so the change is unattributed.
        Chg("delete", ALICE_POST, 1795608700000, ALICE, [("", "")]),
        Skip("jetstream identity event"),
    ],
    "reddit": [
        Row("post", "t3_1abcde", None, None, "t3_1abcde", "acme_official", 1795608000000,
            ACME_REDDIT),
        Row("reply", "t1_kx0001", "t3_1abcde", None, "t3_1abcde", "alice_r", 1795608060000,
            ACME_REDDIT),
        Row("reply", "t1_kx0002", "t1_kx0001", None, "t3_1abcde", "acme_official",
            1795608300000, ACME_REDDIT),
        [
            Row("reply", "t1_kx0003", "t1_kx0001", None, "t3_1abcde", "", 1795608400000,
                ACME_REDDIT),
            Chg("delete", "t1_kx0003", RECEIVED, "", ACME_REDDIT),
        ],
    ],
    "mastodon": [
        Row("post", "113000000000000001", None, None, "113000000000000001", "1001",
            1795608000000, ACME_MASTODON),
        Row("reply", "113000000000000002", "113000000000000001", "1001", None, "2002",
            1795608060000, ACME_MASTODON, ("1001",)),
        Row("reply", "113000000000000003", "113000000000000002", "2002", None, "1001",
            1795608300000, ACME_MASTODON, ("2002",)),
        Row("like", "like:3003:113000000000000001", "113000000000000001", "1001", None, "3003",
            1795608360000, ACME_MASTODON),
        Row("follow", "follow:4004:1001", None, "1001", None, "4004", 1795608420000,
            ACME_MASTODON),
        Chg("delete", "113000000000000002", RECEIVED, "", ACME_MASTODON),
        Chg("edit", "113000000000000003", 1795608540000, "1001", ACME_MASTODON),
    ],
    "x": [
        Row("post", "1861000000000000001", None, None, "1861000000000000001", "900001",
            1795608000000, ACME_X),
        Row("reply", "1861000000000000002", "1861000000000000001", "900001",
            "1861000000000000001", "900002", 1795608060000, ACME_X, ("900001",)),
        Row("reply", "1861000000000000003", "1861000000000000002", "900002",
            "1861000000000000001", "900001", 1795608300000, ACME_X, ("900002",)),
        Row("quote", "1861000000000000004", None, None, "1861000000000000004", "900003",
            1795608360000, ACME_X, ("900001",)),
        Row("mention", "1861000000000000005", None, None, "1861000000000000005", "900004",
            1795608480000, ACME_X, ("900001",)),
    ],
    "facebook": [
        Row("reply", "800001_900001", "700001_800001", None, "700001_800001", "600002",
            1795608060000, ACME_FB),
        Row("reply", "800001_900002", "800001_900001", None, "700001_800001", "700001",
            1795608300000, ACME_FB),
        Row("like", "like:600003:700001_800001", "700001_800001", None, None, "600003",
            1795608400000, ACME_FB),
        Chg("delete", "800001_900001", 1795608500000, "600002", ACME_FB),
    ],
    "instagram": [
        Row("reply", "17865000000000001", "17900000000000001", "178400000000001",
            "17900000000000001", "178400000000002", 1795608060000, ACME_IG, ("acme",)),
        Row("reply", "17865000000000002", "17865000000000001", None, "17900000000000001",
            "178400000000001", 1795608300000, ACME_IG, ("alice",)),
        # A mention in a comment: the comment is a reply to the media, author unknown.
        Row("reply", "17865000000000003", "17900000000000099", None, "17900000000000099", "",
            1795608500000, ACME_IG, ("178400000000001",)),
    ],
}

CASES = [
    pytest.param(platform, n, payload, EXPECTED[platform][n], id=f"{platform}-{n + 1}")
    for platform in PLATFORMS
    for n, payload in enumerate(shared_lines(platform))
]


def test_every_fixture_line_has_an_expectation() -> None:
    for platform in PLATFORMS:
        assert len(shared_lines(platform)) == len(EXPECTED[platform]), platform


@pytest.mark.parametrize(("platform", "line", "payload", "expected"), CASES)
def test_fixture_line(platform: str, line: int, payload: Any, expected: Any) -> None:
    source, via = ARRIVALS[platform]
    out = normalize(platform, payload, arrival(platform, source, via), index())
    wanted = expected if isinstance(expected, list) else [expected]
    if isinstance(wanted[0], Skip):
        assert out == Skipped(wanted[0].reason)
        return
    assert isinstance(out, Normalized), out
    rows = [w for w in wanted if isinstance(w, Row)]
    changes = [w for w in wanted if isinstance(w, Chg)]
    got_rows = [
        Row(i.kind, i.event_id, i.parent_id, i.parent_author_id, i.root_id, i.author_id,
            i.created_at, [(i.client_id, i.account_id)], i.mentioned_ids)
        for i in out.interactions
    ]
    want_rows = [r._replace(targets=[t]) for r in rows for t in r.targets]
    assert got_rows == want_rows
    got_changes = [
        Chg(c.change, c.event_id, c.changed_at, c.author_id, [(c.client_id, c.account_id)])
        for c in out.changes
    ]
    assert got_changes == [c._replace(targets=[t]) for c in changes for t in c.targets]
    a = arrival(platform, source, via)
    for i in out.interactions:
        assert (i.platform, i.source, i.ingested_at, i.version, i.raw_key) == (
            platform, a.source, a.received_at, a.received_at, a.raw_key)
        assert i.deleted is False and i.edited_at is None
    for c in out.changes:
        assert (c.platform, c.source, c.version, c.raw_key) == (
            platform, a.source, a.received_at, a.raw_key)


@pytest.mark.parametrize(("platform", "line", "payload", "expected"), CASES)
def test_fixture_line_is_deterministic(
    platform: str, line: int, payload: Any, expected: Any,
) -> None:
    source, via = ARRIVALS[platform]
    first = normalize(platform, payload, arrival(platform, source, via), index())
    again = normalize(platform, payload, arrival(platform, source, via), index())
    assert first == again
