"""Mastodon edge cases: string payloads, bare-id deletes, boosts, DMs, REST backfill."""

from __future__ import annotations

import json
from typing import Any

from streams.normalize.mastodon import html_to_text
from tests.unit.normalize.support import (
    RECEIVED,
    change,
    dead,
    extra,
    ok,
    only,
    shared_lines,
    skipped,
)

ACME = ("acme", "1001")


def case(name: str) -> Any:
    return extra("mastodon", name)


def test_payload_as_json_string_equals_payload_as_object() -> None:
    for line in shared_lines("mastodon"):
        if isinstance(line["payload"], dict):
            encoded = {**line, "payload": json.dumps(line["payload"]), "stream": ["user"]}
            assert ok("mastodon", encoded, via="1001") == ok("mastodon", line, via="1001")


def test_string_payload_html_becomes_plain_text() -> None:
    i = only("mastodon", case("update_payload_string"))
    assert i.text == "Dark mode & more.\n\nLine one\nline two"
    assert (i.kind, i.root_id, i.client_id) == ("post", i.event_id, "acme")


def test_html_to_text() -> None:
    assert html_to_text("plain") == "plain"
    assert html_to_text("<p>a &lt;b&gt;</p><p>c</p>") == "a <b>\n\nc"
    html = (
        '<p><span class="h-card"><a href="u" class="u-url mention">@<span>acme</span></a>'
        "</span> hi</p>"
    )
    assert html_to_text(html) == "@acme hi"


def test_bare_id_delete_is_unattributed_without_the_accounts_stream() -> None:
    c = change("mastodon", case("delete_unattributed"))
    assert (c.change, c.event_id, c.client_id, c.account_id) == (
        "delete", "113000000000000009", "", "")
    assert c.changed_at == RECEIVED  # the event carries no time of its own


def test_delete_payload_may_be_json_encoded_or_a_number() -> None:
    assert change("mastodon", case("delete_json_string")).event_id == "113000000000000008"
    assert change("mastodon", {"event": "delete", "payload": 113000000000000007}).event_id == (
        "113000000000000007")
    assert dead("mastodon", {"event": "delete", "payload": {"id": "1"}}) == (
        "mastodon: payload must be the deleted status id")


def test_boost_and_reblog_notification_share_one_id() -> None:
    boost = only("mastodon", case("reblog_update"))
    notified = only("mastodon", case("reblog_notification"), via="1001")
    assert boost.event_id == notified.event_id == "repost:3003:113000000000000001"
    assert (boost.kind, boost.parent_id, boost.parent_author_id) == (
        "repost", "113000000000000001", "1001")


def test_direct_status_is_a_dm_to_the_mentioned_account() -> None:
    i = only("mastodon", case("direct_message"))
    assert (i.kind, i.recipient_id, i.author_id, (i.client_id, i.account_id)) == (
        "dm", "1001", "3003", ACME)


def test_hashtag_reaches_its_listeners() -> None:
    i = only("mastodon", case("hashtag_listen"))
    assert (i.client_id, i.account_id, i.kind) == ("globex", "7007", "post")


def test_rest_status_and_notification_from_backfill() -> None:
    i = only("mastodon", case("rest_status"))
    assert (i.kind, i.parent_id, i.parent_author_id, i.root_id) == (
        "reply", "113000000000000070", "3003", None)
    m = only("mastodon", case("rest_notification_mention"), source="notifications", via="1001")
    assert (m.kind, m.event_id, m.mentioned_ids, m.source) == (
        "mention", "113000000000000090", ("1001",), "notifications")


def test_follow_needs_the_notification_owner() -> None:
    follow = shared_lines("mastodon")[4]
    assert skipped("mastodon", follow).startswith("follow notification without via_account")
    assert only("mastodon", follow, via="1001").event_id == "follow:4004:1001"


def test_favourite_without_via_is_attributed_by_the_status_author() -> None:
    i = only("mastodon", shared_lines("mastodon")[3])
    assert (i.kind, i.client_id, i.account_id) == ("like", "acme", "1001")


def test_edit_is_a_change_timed_by_edited_at() -> None:
    c = change("mastodon", shared_lines("mastodon")[6])
    assert (c.change, c.changed_at, c.text) == ("edit", 1795608540000, "thanks, a fix ships today")
    assert (c.client_id, c.account_id) == ACME


def test_quote_of_the_accounts_status() -> None:
    status = shared_lines("mastodon")[1]["payload"]["status"]
    status["in_reply_to_id"] = status["in_reply_to_account_id"] = None
    status["quote"] = {"state": "accepted", "quoted_status": shared_lines("mastodon")[0]["payload"]}
    i = only("mastodon", {"event": "update", "payload": status})
    assert (i.kind, i.quoted_id, i.quoted_author_id) == ("quote", "113000000000000001", "1001")


def test_skips_and_dead_letters() -> None:
    assert skipped("mastodon", case("admin_notification")) == (
        "notification type 'admin.sign_up' is not read")
    assert skipped("mastodon", case("filters_changed")) == (
        "streaming event 'filters_changed' is not read")
    assert dead("mastodon", case("payload_not_json")) == (
        "mastodon: payload is a string but not JSON")
    assert dead("mastodon", case("status_missing_account")) == "mastodon: payload.account missing"
    bad_time = shared_lines("mastodon")[0]
    bad_time["payload"]["created_at"] = "yesterday"
    assert dead("mastodon", bad_time) == (
        "mastodon: payload.created_at is not an ISO 8601 time: 'yesterday'")


# Mastodon sends a notification about a deleted status with ``status: null`` (the API's
# Notification entity: "status: Status or null"), on REST and streaming alike. It is
# well-formed and concerns no metric: skipped with its reason, never dead-lettered.
NULL_STATUS_CASES = ("mention_status_null_rest", "mention_status_null_stream", "favourite_status_null",
                     "reblog_status_null", "update_status_null")


def test_a_notification_whose_status_was_deleted_is_skipped() -> None:
    for name in NULL_STATUS_CASES:
        ntype = name.split("_", 1)[0]
        for via in ("1001", None):
            reason = skipped("mastodon", case(name), via=via)
            assert reason == f"{ntype} notification whose status was deleted (status null)", (name, reason)


def test_a_notification_without_its_status_key_is_still_malformed() -> None:
    assert "status missing" in dead("mastodon", case("mention_status_absent"))


def test_deleted_status_notifications_are_counted_as_skips_in_a_batch() -> None:
    """Through the batch normalizer: counted skips, no dead letter."""
    from streams.clients import load_clients
    from streams.normalize.base import AccountIndex
    from streams.normalize.records import RawRecord, normalize_records
    from tests.support.stack import REPO

    bodies = [json.dumps(case(name)).encode() for name in NULL_STATUS_CASES]
    recs = [RawRecord("raw.mastodon", 0, i, "mastodon", body, {"source": "notifications", "via_account": "1001",
                                                                 "received_at": "1790000000000"}, 5)
            for i, body in enumerate(bodies)]
    idx = AccountIndex.build(load_clients(REPO / "clients.example.toml"))
    out = normalize_records(recs, idx, 1_790_000_000_123)
    assert out.dead_letters == [] and out.events_out == 0
    assert out.skipped == len(bodies)
    assert sum(out.skip_reasons.values()) == len(bodies)
    assert all("status was deleted" in reason for reason in out.skip_reasons), out.skip_reasons


def test_an_unattributed_delete_reaches_every_tracked_account_of_its_platform() -> None:
    """Detection state lives in each account's partition: one copy of the change per account key."""
    from streams.clients import load_clients
    from streams.normalize.base import AccountIndex
    from streams.normalize.records import RawRecord, normalize_records
    from tests.support.stack import REPO

    clients = load_clients(REPO / "clients.example.toml")
    idx = AccountIndex.build(clients)
    mastodon = sorted(f"{c.id}:{a.account_id}" for c, a in clients.accounts() if a.platform == "mastodon")
    assert mastodon
    body = b'{"event":"delete","payload":"113000000000000002"}'
    rec = RawRecord("raw.mastodon", 0, 0, "mastodon", body, {"source": "stream", "received_at": "1790000000000"}, 5)
    out = normalize_records([rec], idx, 1_790_000_001_000)
    keyed = sorted(k for k, env in out.envelopes.items() if env.changes)
    assert keyed == mastodon
    rows = [env.changes[0] for env in out.envelopes.values() if env.changes]
    assert all(row == rows[0] for row in rows)  # the same row each time: the store keeps one
    assert rows[0][6] == "" and rows[0][7] == ""  # still unattributed
    assert out.events_out == 1  # the archive expects one change, not one per copy
