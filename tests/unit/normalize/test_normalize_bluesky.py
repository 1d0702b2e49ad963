"""Bluesky edge cases beyond the shared fixtures: quotes, edits, deletes, listening."""

from __future__ import annotations

from typing import Any

from tests.unit.normalize.support import (
    change,
    dead,
    extra,
    ok,
    only,
    shared_lines,
    skipped,
    targets,
)

BRAND = "did:plc:brandaaaaaaaaaaaaaaaaaaa"
GLOBEX = "did:plc:globexgggggggggggggggggg"
CAROL = "did:plc:carolcarolcarolcarolcar"
BRAND_POST = f"at://{BRAND}/app.bsky.feed.post/3lbpost0001"


def case(name: str) -> Any:
    return extra("bluesky", name)


def test_quote_names_the_quoted_author_from_the_uri() -> None:
    for name in ("quote_embed_record", "quote_with_media"):
        i = only("bluesky", case(name))
        assert (i.kind, i.quoted_id, i.quoted_author_id) == ("quote", BRAND_POST, BRAND)
        assert (i.client_id, i.account_id) == ("acme", BRAND)
        assert i.parent_id is None and i.root_id == i.event_id


def test_embedded_list_is_not_a_quote() -> None:
    assert skipped("bluesky", case("embed_list_is_not_quote")) == "concerns no tracked account"


def test_repost_points_at_its_subject() -> None:
    i = only("bluesky", case("repost"))
    assert (i.kind, i.parent_id, i.parent_author_id, i.root_id) == (
        "repost", BRAND_POST, BRAND, None)


def test_update_is_an_edit_change_never_an_interaction() -> None:
    c = change("bluesky", case("update_post"))
    assert (c.change, c.event_id) == ("edit", BRAND_POST)
    assert c.text == "We just shipped dark mode (and light)."
    assert (c.client_id, c.account_id, c.changed_at) == ("acme", BRAND, 1795608904000)


def test_delete_by_tracked_account_is_attributed() -> None:
    c = change("bluesky", case("delete_tracked"))
    assert (c.change, c.event_id) == ("delete", f"at://{BRAND}/app.bsky.feed.post/3lbpost0002")
    assert (c.client_id, c.account_id, c.text) == ("acme", BRAND, "")


def test_delete_by_stranger_is_unattributed() -> None:
    c = change("bluesky", case("delete_like"))
    assert c.event_id == "at://did:plc:bobbobbobbobbobbobbobbob/app.bsky.feed.like/3lblike0001"
    assert (c.client_id, c.account_id) == ("", "")


def test_delete_through_an_accounts_own_stream_is_attributed() -> None:
    c = change("bluesky", case("delete_like"), via=BRAND)
    assert (c.client_id, c.account_id) == ("acme", BRAND)


def test_one_post_mentioning_two_accounts_concerns_both() -> None:
    out = ok("bluesky", case("mention_two_accounts"))
    assert targets(out) == [("acme", BRAND), ("globex", GLOBEX)]
    assert {i.kind for i in out.interactions} == {"mention"}
    assert out.interactions[0].mentioned_ids == (GLOBEX, BRAND)  # payload order
    # An unreadable client-set createdAt is data, never a reason to refuse the payload.
    assert out.interactions[0].client_created_at is None
    assert out.interactions[0].lang == "en"


def test_hashtag_in_facet_or_tags_reaches_its_listeners() -> None:
    for name in ("hashtag_listen", "record_tags_listen"):
        i = only("bluesky", case(name))
        assert (i.client_id, i.kind) == ("globex", "post")


def test_reply_elsewhere_mentioning_the_brand_is_a_reply() -> None:
    i = only("bluesky", case("reply_to_other_thread_mentioning_brand"))
    assert i.kind == "reply"  # reply outranks mention; the mention still attributes it
    assert i.root_id == "at://did:plc:alicealicealicealiceali/app.bsky.feed.post/3laroot"
    assert i.mentioned_ids == (BRAND,)


def test_follow_names_the_followed_account() -> None:
    i = only("bluesky", case("follow_of_globex"))
    assert (i.kind, i.parent_id, i.parent_author_id, i.client_id) == (
        "follow", None, GLOBEX, "globex")


def test_skips_are_counted_not_dead_lettered() -> None:
    assert skipped("bluesky", case("unrelated_post")) == "concerns no tracked account"
    assert skipped("bluesky", case("unknown_collection")).startswith("collection")
    assert skipped("bluesky", case("account_event")) == "jetstream account event"


def test_dead_letters_name_the_field() -> None:
    assert dead("bluesky", case("bad_reply_parent")) == (
        "bluesky: commit.record.reply.parent.uri missing")
    assert dead("bluesky", case("bad_time")) == "bluesky: time_us must be a number, got string"
    assert dead("bluesky", {"kind": "commit", "time_us": "soon"}) == "bluesky: did missing"
    post = shared_lines("bluesky")[0]
    post["commit"]["operation"] = "upsert"
    assert "commit.operation" in dead("bluesky", post)
    post = shared_lines("bluesky")[0]
    mention = {"$type": "app.bsky.richtext.facet#mention"}  # no did
    post["commit"]["record"]["facets"] = [{"features": [mention]}]
    assert dead("bluesky", post) == "bluesky: commit.record.facets[0].features[0].did missing"


def test_event_time_is_time_us_and_created_at_is_kept_apart() -> None:
    post = shared_lines("bluesky")[0]
    post["time_us"] = 1795608000123999
    i = only("bluesky", post)
    assert i.created_at == 1795608000123
    assert i.client_created_at == 1795608000000
