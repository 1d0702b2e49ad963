"""X edge cases: edits, username-only mentions, retweets, rules, DM events."""

from __future__ import annotations

from typing import Any

from tests.unit.normalize.support import change, dead, extra, ok, only, shared_lines, skipped

ACME = ("acme", "900001")


def case(name: str) -> Any:
    return extra("x", name)


def test_edit_is_a_change_of_the_first_id_and_no_new_interaction() -> None:
    c = change("x", case("edit"))
    assert (c.change, c.event_id, c.changed_at, c.author_id) == (
        "edit", "1861000000000000002", 1795609200000, "900002")
    assert (c.client_id, c.account_id) == ACME
    assert c.text.endswith("(edited)")


def test_original_with_its_own_history_is_a_normal_post() -> None:
    i = only("x", case("unedited_with_history"))
    assert (i.event_id, i.kind, i.mentioned_ids) == ("1861000000000000010", "mention", ("acme",))


def test_retweet_is_a_repost_with_the_author_from_includes() -> None:
    i = only("x", case("retweet"))
    assert (i.kind, i.parent_id, i.parent_author_id, i.root_id, i.text) == (
        "repost", "1861000000000000001", "900001", None, "")


def test_quote_author_from_includes_attributes_it() -> None:
    i = only("x", case("quote_with_includes"))
    assert (i.kind, i.quoted_id, i.quoted_author_id, (i.client_id, i.account_id)) == (
        "quote", "1861000000000000001", "900001", ACME)


def test_matching_rule_or_listen_source_reaches_the_listener() -> None:
    i = only("x", case("rule_listen"))
    assert (i.client_id, i.account_id) == ("globex", "900777")
    bare = case("rule_listen")
    del bare["matching_rules"]
    assert skipped("x", bare) == "concerns no tracked account"
    assert only("x", bare, source="listen:globex-rule").client_id == "globex"


def test_handle_comes_from_includes() -> None:
    i = only("x", shared_lines("x")[1])
    assert (i.author_handle, i.url) == ("alice", "https://x.com/alice/status/1861000000000000002")


def test_dm_event_is_a_dm_in_its_conversation() -> None:
    out = ok("x", case("dm_event"))
    assert len(out.interactions) == 1
    i = out.interactions[0]
    assert (i.kind, i.root_id, i.recipient_id, i.author_id, i.author_handle) == (
        "dm", "900001-900002", "900001", "900002", "alice")


def test_skips_and_dead_letters() -> None:
    assert skipped("x", case("errors_only")) == "response holds only errors"
    assert skipped("x", {"meta": {"result_count": 0}}) == "response holds no posts"
    assert dead("x", case("bad_second_item")) == "x: data[1].created_at missing"
    assert dead("x", {"data": "1861"}) == "x: data must be an object or an array"
    post = shared_lines("x")[0]
    del post["data"]["author_id"]
    assert dead("x", post) == "x: data.author_id missing"
