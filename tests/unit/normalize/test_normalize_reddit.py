"""Reddit edge cases: nested replies, inbox comments, u/ mentions, snapshots of edits."""

from __future__ import annotations

from typing import Any

import pytest

from streams.normalize.reddit import mentions_in
from tests.unit.normalize.support import RECEIVED, dead, extra, ok, only, skipped

ACME = ("acme", "acme_official")


def case(name: str) -> Any:
    return extra("reddit", name)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("hey u/acme_official look", ("acme_official",)),
        ("/u/Acme_Official: help", ("acme_official",)),
        ("(u/acme_official)", ("acme_official",)),
        ("u/acme_official's app", ("acme_official",)),
        ("ask u/acme\\_official", ("acme_official",)),  # rich-text editor escape
        ("[u/acme_official](https://www.reddit.com/user/acme_official)", ("acme_official",)),
        ("u/one and U/Two and u/one", ("one", "two")),
        ("[profile](https://www.reddit.com/u/acme_official)", ()),
        ("[profile](/u/acme_official)", ()),
        ("https://reddit.com/u/acme_official/", ()),
        ("<https://reddit.com/u/acme_official>", ()),
        ("www.reddit.com/u/acme_official", ()),
        ("reddit.com/u/acme_official", ()),
        ("menu/acme_official", ()),
        ("xu/acme_official", ()),
        ("u/ab", ()),  # shorter than any Reddit name
        ("u/abcdefghijklmnopqrstuvwxyz", ()),  # longer than any Reddit name
        ("no mention here", ()),
    ],
)
def test_mentions_stand_as_words_outside_links(text: str, names: tuple[str, ...]) -> None:
    assert mentions_in(text) == names


def test_nested_replies_are_walked_and_name_their_parents_author() -> None:
    out = ok("reddit", case("nested_replies"))
    rows = [(i.event_id, i.author_id, i.parent_id, i.parent_author_id, i.root_id)
            for i in out.interactions]
    # Alice's top comment and Bob's reply concern no tracked account; the brand's reply
    # does (authored), and Alice's answer to it does (its enclosing parent is the brand).
    assert rows == [
        ("t1_n002", "acme_official", "t1_n001", "alice_r", "t3_9zzz"),
        ("t1_n003", "alice_r", "t1_n002", "acme_official", "t3_9zzz"),
    ]
    assert {(i.client_id, i.account_id) for i in out.interactions} == {ACME}
    assert out.interactions[0].created_at == 1795609100500
    assert out.interactions[1].author_handle == "Alice_R"


def test_nested_replies_through_a_listened_source_are_all_attributed() -> None:
    out = ok("reddit", case("nested_replies"), source="listen:r/acme")
    assert [i.event_id for i in out.interactions] == ["t1_n001", "t1_n002", "t1_n003", "t1_n004"]


def test_inbox_comment_takes_its_root_from_context() -> None:
    payload = case("inbox_comment_context")
    assert skipped("reddit", payload) == "concerns no tracked account"
    i = only("reddit", payload, source="inbox", via="acme_official")
    assert (i.client_id, i.account_id) == ACME
    assert (i.kind, i.root_id, i.parent_id) == ("reply", "t3_2xyz89", "t1_kx0099")
    assert i.url.startswith("https://www.reddit.com/r/gadgets/comments/2xyz89/")


def test_inbox_via_account_matches_case_insensitively() -> None:
    i = only("reddit", case("inbox_comment_context"), source="inbox", via="ACME_Official")
    assert (i.client_id, i.account_id) == ACME


def test_mention_attributes_and_is_recorded_lowercased() -> None:
    i = only("reddit", case("mention_in_comment"))
    assert (i.client_id, i.kind, i.mentioned_ids) == ("acme", "reply", ("acme_official",))


def test_mentions_inside_links_do_not_count() -> None:
    assert skipped("reddit", case("mention_only_in_links")) == "concerns no tracked account"


def test_submission_mentioning_the_account_is_a_mention() -> None:
    i = only("reddit", case("submission_mention"))
    assert (i.kind, i.root_id, i.text) == ("mention", "t3_7bbb", "Question for /u/acme_official")
    assert i.created_at == 1795609500000


def test_edited_snapshot_yields_the_interaction_and_an_edit() -> None:
    out = ok("reddit", case("edited_comment"))
    assert [i.event_id for i in out.interactions] == ["t1_kx0002"]
    assert [(c.change, c.event_id, c.changed_at, c.text) for c in out.changes] == [
        ("edit", "t1_kx0002", 1795608999000, "Thanks, a fix shipped")]


def test_listing_is_split_and_subreddit_listening_is_case_insensitive() -> None:
    out = ok("reddit", case("listing_of_things"))
    assert [(i.client_id, i.account_id, i.event_id, i.text) for i in out.interactions] == [
        ("globex", "Globex_HQ", "t3_gx01", "Hello\n\nworld")]
    assert out.interactions[0].author_id == "globex_hq"


def test_private_message_is_a_dm_to_its_recipient() -> None:
    i = only("reddit", case("private_message"))
    assert (i.kind, i.recipient_id, i.root_id, i.client_id) == (
        "dm", "acme_official", "t4_pm01", "acme")


def test_deleted_author_is_unknown() -> None:
    out = ok("reddit", {"kind": "t1", "data": {
        "name": "t1_d1", "body": "gone?", "parent_id": "t3_1abcde", "link_id": "t3_1abcde",
        "subreddit": "acme", "created_utc": 1795608000}})
    assert out.interactions[0].author_id == "" and out.interactions[0].author_handle == ""


def test_removed_body_is_a_delete_change_beside_the_interaction() -> None:
    payload = case("unrelated_comment")
    payload["data"]["body"] = "[removed]"
    out = ok("reddit", payload, via="acme_official")
    assert [i.event_id for i in out.interactions] == ["t1_u001"]
    assert [(c.change, c.event_id, c.text, c.changed_at) for c in out.changes] == [
        ("delete", "t1_u001", "", RECEIVED)]


def test_dead_letters_name_the_field() -> None:
    assert dead("reddit", case("bad_created_utc")) == (
        "reddit: data.created_utc must be a number, got string")
    assert dead("reddit", case("bad_nested_child")) == (
        "reddit: data.replies.data.children[0].data.body missing")
    assert "data.parent_id" in dead("reddit", {"kind": "t1", "data": {
        "name": "t1_x", "body": "", "parent_id": "t2_x", "created_utc": 1}})
    assert dead("reddit", {"kind": "t3", "data": {"name": "t1_x", "title": "t", "created_utc": 1}}
                ).startswith("reddit: data.name")
    assert dead("reddit", []) == "reddit: payload must be an object, got array"


def test_unread_things_are_skipped() -> None:
    assert skipped("reddit", {"kind": "t5", "data": {}}) == "thing kind 't5' is not read"
    assert skipped("reddit", {"kind": "Listing", "data": {"children": []}}) == (
        "payload holds no events")
