"""Addressing rules (README "Addressing"), alone and as the account state applies them."""

from __future__ import annotations

from detect_builders import make_client, make_msg

from streams.detect.account_state import AccountState
from streams.detect.addressing import (
    addressees,
    is_inbound,
    payload_addressing,
    persons_addressed_by_account,
)
from streams.interaction import Interaction


def addressed(m: Interaction, thread_parent_author: str | None = None) -> frozenset[str]:
    said = payload_addressing(m)
    return addressees(said.author, said.named, said.parent_author, thread_parent_author)


def inbound_ids(platform: str, msgs: list[Interaction], account: str = "acct") -> list[str]:
    state = AccountState(make_client(platform=platform, account=account), account)
    state.apply(msgs)
    return [r.event_id for r in state.snapshot().responses]


def test_reply_addresses_the_parents_author() -> None:
    m = make_msg("a", "reply", "p1", parent="r", pa="acct")
    assert addressed(m) == {"acct"}
    assert is_inbound("p1", addressed(m), "acct")


def test_parent_author_from_the_thread_when_the_payload_lacks_it() -> None:
    m = make_msg("a", "reply", "p1", platform="reddit", parent="t3_r", root="t3_r")
    assert addressed(m) == frozenset()
    assert addressed(m, thread_parent_author="acct") == {"acct"}
    # in the account state the parent may arrive before or after the reply
    root = make_msg("t3_r", "post", "acct", platform="reddit", root="t3_r")
    assert inbound_ids("reddit", [m, root]) == ["a"]
    assert inbound_ids("reddit", [root, m]) == ["a"]


def test_payload_parent_author_wins_over_the_thread() -> None:
    m = make_msg("a", "reply", "p1", parent="r", pa="p2")
    assert addressed(m, thread_parent_author="acct") == {"p2"}


def test_dm_and_quote_address_their_targets() -> None:
    assert addressed(make_msg("d", "dm", "p1", recipient="acct", root="c")) == {"acct"}
    assert addressed(make_msg("q", "quote", "p1", quoted="r", quoted_author="acct")) == {"acct"}


def test_mentions_in_x_and_mastodon_replies_are_automatic_and_ignored() -> None:
    for platform in ("x", "mastodon"):
        # p1 replies to p2 in a thread the account started: leading @acct added by the client
        m = make_msg("a", "reply", "p1", platform=platform, parent="b", pa="p2", mentions=("acct", "p2"))
        assert addressed(m) == {"p2"}, platform
        assert not is_inbound("p1", addressed(m), "acct")
    # outside a reply a mention addresses its target
    post = make_msg("p", "mention", "p1", platform="x", mentions=("acct",))
    assert addressed(post) == {"acct"}


def test_mentions_in_reddit_and_bluesky_replies_address_their_target() -> None:
    for platform in ("reddit", "bluesky"):
        m = make_msg("a", "reply", "p1", platform=platform, parent="b", pa="p2", mentions=("acct",))
        assert addressed(m) == {"acct", "p2"}, platform
        assert is_inbound("p1", addressed(m), "acct")


def test_reddit_names_compare_case_insensitively() -> None:
    m = make_msg("t1_a", "reply", "Alice", platform="reddit", parent="t1_b", mentions=("brand",))
    said = payload_addressing(m)
    assert said.author == "alice"
    assert is_inbound(said.author, addressed(m), "brand")
    # the account spelled "Brand" in the clients file, mentioned as "brand"
    reply = make_msg(
        "t1_a", "reply", "Alice", platform="reddit", parent="t3_x", root="t3_x", mentions=("brand",), account="Brand"
    )
    assert inbound_ids("reddit", [reply], account="Brand") == ["t1_a"]


def test_unknown_authors_address_no_one_and_are_addressed_by_no_one() -> None:
    assert addressed(make_msg("a", "reply", "", parent="r", pa="acct", mentions=("acct",))) == frozenset()
    assert addressed(make_msg("a", "reply", "[deleted]", platform="reddit", parent="r", pa="acct")) == frozenset()
    # a reply to a post whose author is unknown addresses no one
    assert addressed(make_msg("a", "reply", "p1", parent="r"), thread_parent_author="") == frozenset()
    assert addressed(make_msg("p", "post", "p1", mentions=("", "acct"))) == {"acct"}


def test_nobody_addresses_themselves() -> None:
    m = make_msg("a", "reply", "acct", parent="r", pa="acct", mentions=("acct",), platform="reddit")
    assert addressed(m) == frozenset()
    assert persons_addressed_by_account("acct", addressed(m), "acct") == ()


def test_signals_are_never_inbound() -> None:
    like = make_msg("like:p1:r", "like", "p1", parent="r", pa="acct")
    follow = make_msg("follow:p1:acct", "follow", "p1", pa="acct")
    assert addressed(like) == frozenset()
    state = AccountState(make_client(), "acct")
    state.apply([like, follow])
    assert not state.snapshot().responses
    assert not state.snapshot().threads
    assert state.counters["signals"] == 2


def test_account_messages_address_persons() -> None:
    m = make_msg("b", "reply", "acct", parent="a", pa="p1", mentions=("p2",), platform="bluesky")
    assert persons_addressed_by_account("acct", addressed(m), "acct") == ("p1", "p2")
    assert persons_addressed_by_account("p3", addressed(m), "acct") == ()
