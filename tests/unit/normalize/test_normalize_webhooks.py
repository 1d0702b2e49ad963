"""Facebook Page and Instagram webhook edge cases."""

from __future__ import annotations

from typing import Any

from tests.unit.normalize.support import change, dead, extra, ok, only, skipped

PAGE = ("acme", "700001")
IG = ("acme", "178400000000001")


def fb(name: str) -> Any:
    return extra("facebook", name)


def ig(name: str) -> Any:
    return extra("instagram", name)


def test_reaction_without_id_is_keyed_by_actor_and_target() -> None:
    i = only("facebook", fb("reaction_on_comment"), source="webhook")
    assert (i.kind, i.event_id, i.parent_id, i.root_id) == (
        "like", "like:600004:800001_900002", "800001_900002", None)
    assert (i.client_id, i.account_id) == PAGE


def test_reaction_removed_deletes_the_same_key() -> None:
    c = change("facebook", fb("reaction_removed"))
    assert (c.change, c.event_id, c.changed_at) == (
        "delete", "like:600003:700001_800001", 1795609021000)


def test_comment_edited_is_an_edit_change() -> None:
    c = change("facebook", fb("comment_edited"))
    assert (c.change, c.event_id, c.text, c.changed_at) == (
        "edit", "800001_900002", "Thanks Alice, the fix is live", 1795609030000)


def test_created_time_may_be_iso_and_entry_time_may_be_ms() -> None:
    i = only("facebook", fb("page_post_iso_time_entry_ms"))
    assert (i.kind, i.event_id, i.root_id, i.created_at) == (
        "post", "700001_800002", "700001_800002", 1795609800000)
    j = only("facebook", fb("comment_no_from_no_created_time"))
    assert (j.created_at, j.author_id, j.kind) == (1795609050000, "", "reply")


def test_messenger_message_is_a_dm_of_the_pair() -> None:
    i = only("facebook", fb("messenger_dm"))
    assert (i.kind, i.event_id, i.root_id, i.recipient_id, i.created_at) == (
        "dm", "m_abc", "dm:700001:600002", "700001", 1795609060123)


def test_page_mention_in_a_comment() -> None:
    i = only("facebook", fb("page_mention"))
    assert (i.kind, i.event_id, i.parent_id, i.mentioned_ids, i.author_id) == (
        "reply", "666_777", "555_666", ("700001",), "600005")


def test_facebook_skips_and_dead_letters() -> None:
    assert skipped("facebook", fb("user_object")) == "webhook object 'user' is not read"
    assert skipped("facebook", fb("hidden_comment")) == "feed verb 'hide' changes nothing counted"
    assert dead("facebook", fb("unknown_verb")) == (
        "facebook: entry[0].changes[0].value.verb 'explode' is not add, edited or remove")
    assert dead("facebook", fb("entry_not_list")) == "facebook: entry must be an array, got object"


def test_instagram_caption_mention_is_a_mention() -> None:
    i = only("instagram", ig("caption_mention"))
    assert (i.kind, i.event_id, i.parent_id, i.root_id, i.author_id, i.mentioned_ids) == (
        "mention", "17900000000000123", None, "17900000000000123", "", ("178400000000001",))
    assert (i.client_id, i.account_id) == IG


def test_instagram_messages_both_shapes() -> None:
    a = only("instagram", ig("message_change"))
    assert (a.kind, a.root_id, a.created_at, a.author_id) == (
        "dm", "dm:178400000000001:178400000000002", 1795609110000, "178400000000002")
    b = only("instagram", ig("messaging_entry_ms"))
    assert (b.author_id, b.recipient_id, b.root_id) == (
        "178400000000001", "178400000000002", "dm:178400000000001:178400000000002")


def test_instagram_deleted_message_is_a_delete_change() -> None:
    c = change("instagram", ig("message_deleted"))
    assert (c.change, c.event_id, (c.client_id, c.account_id)) == ("delete", "aWdfZAG1", IG)


def test_instagram_skips_and_dead_letters() -> None:
    assert skipped("instagram", ig("story_insights")) == "field 'story_insights' is not read"
    assert dead("instagram", ig("comment_without_media")) == (
        "instagram: entry[0].changes[0].value.media missing"
        " (a comment needs its media or parent)")
    assert skipped("instagram", extra("facebook", "messenger_dm")) == (
        "webhook object 'page' is not read")


def test_every_entry_and_change_is_read() -> None:
    payload = extra("facebook", "reaction_on_comment")
    payload["entry"].append(extra("facebook", "messenger_dm")["entry"][0])
    out = ok("facebook", payload)
    assert [i.kind for i in out.interactions] == ["like", "dm"]


def test_share_in_the_page_feed_is_a_post_of_its_own() -> None:
    payload = extra("facebook", "page_post_iso_time_entry_ms")
    value = payload["entry"][0]["changes"][0]["value"]
    value.update(item="share", share_id="999", link="https://example.com/a",
                 **{"from": {"id": "600009", "name": "Gus"}})
    i = only("facebook", payload)
    assert (i.kind, i.event_id, i.root_id, i.url, i.author_id) == (
        "post", "700001_800002", "700001_800002", "https://example.com/a", "600009")
    assert (i.client_id, i.account_id) == PAGE
