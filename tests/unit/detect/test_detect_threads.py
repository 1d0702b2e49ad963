"""Thread stitching: roots, depth with missing parents, orphans, Mastodon chains, eviction."""

from __future__ import annotations

import itertools

from detect_builders import make_msg

from streams.detect.threads import ThreadBook, ThreadStats
from streams.interaction import Interaction


def book_of(msgs: list[Interaction], account: str = "acct") -> ThreadBook:
    book = ThreadBook(account)
    for m in msgs:
        book.add(m)
    return book


def stats(book: ThreadBook, platform: str, root: str) -> ThreadStats:
    return book.snapshot()[(platform, root)]


def test_root_alone_has_depth_zero_and_direct_reply_depth_one() -> None:
    book = book_of([make_msg("r", author="acct", root="r")])
    assert stats(book, "x", "r") == ThreadStats("x", "r", 1, 0, 1, 1, 0, 0)
    book.add(make_msg("a", "reply", "p1", parent="r", root="r", at=5))
    assert stats(book, "x", "r") == ThreadStats("x", "r", 2, 1, 2, 1, 0, 5)


def test_missing_parent_counts_one_level_under_the_root() -> None:
    # r <- (missing m) <- c : c is at depth 2; m is not counted as post or participant
    book = book_of([make_msg("r", author="acct"), make_msg("c", "reply", "p2", parent="m", root="r", at=9)])
    s = stats(book, "x", "r")
    assert (s.posts, s.depth, s.participants) == (2, 2, 2)


def test_depth_is_recomputed_when_the_missing_parent_arrives() -> None:
    book = book_of(
        [
            make_msg("r", author="acct"),
            make_msg("c", "reply", "p2", parent="m", root="r", at=9),
            make_msg("d", "reply", "p3", parent="c", root="r", at=10),
        ]
    )
    assert stats(book, "x", "r").depth == 3
    # m's own parent is missing too: m at 2, c at 3, d at 4
    book.add(make_msg("m", "reply", "p1", parent="q", root="r", at=8))
    assert stats(book, "x", "r").depth == 4
    assert stats(book, "x", "r").posts == 4
    book.add(make_msg("q", "reply", "p1", parent="r", root="r", at=7))
    assert stats(book, "x", "r").depth == 4  # q at 1, m 2, c 3, d 4
    assert stats(book, "x", "r").participants == 4


def test_missing_root_is_never_counted() -> None:
    book = book_of([make_msg("a", "reply", "p1", parent="r", root="r", at=3)])
    assert stats(book, "x", "r") == ThreadStats("x", "r", 1, 1, 1, 0, 3, 3)


def test_unknown_authors_are_not_participants() -> None:
    book = book_of([make_msg("r", author=""), make_msg("a", "reply", "p1", parent="r", root="r")])
    assert stats(book, "x", "r").participants == 1
    assert stats(book, "x", "r").posts == 2


def test_duplicates_are_ignored() -> None:
    m = make_msg("r", author="acct")
    book = book_of([m, m, m])
    assert stats(book, "x", "r").posts == 1
    assert book.duplicates == 2


def test_every_arrival_order_gives_the_same_threads() -> None:
    msgs = [
        make_msg("r", author="acct", at=0),
        make_msg("a", "reply", "p1", parent="r", root="r", at=1),
        make_msg("b", "reply", "acct", parent="a", root="r", at=2),
        make_msg("c", "reply", "p2", parent="b", root="r", at=3),
        make_msg("z", "reply", "p2", parent="gone", root="r", at=4),
    ]
    expected = book_of(msgs).snapshot()
    for order in itertools.permutations(msgs):
        assert book_of(list(order)).snapshot() == expected
    assert expected[("x", "r")] == ThreadStats("x", "r", 5, 3, 3, 2, 0, 4)


def masto(eid: str, author: str, parent: str | None = None, at: int = 0) -> Interaction:
    kind = "reply" if parent else "post"
    return make_msg(eid, kind, author, platform="mastodon", parent=parent, at=at)


def test_mastodon_chain_waits_under_its_highest_known_ancestor_then_is_retracted() -> None:
    book = ThreadBook("acct")
    book.add(masto("c", "p2", parent="b", at=3))
    assert set(book.snapshot()) == {("mastodon", "b")}  # provisional: named by the missing parent
    added = book.add(masto("b", "p1", parent="a", at=2))
    assert added is not None
    assert added.retracted == (("mastodon", "b"),)
    assert [(m.src.tid, m.dst.tid, m.complete) for m in added.merged] == [(("mastodon", "b"), ("mastodon", "a"), True)]
    assert set(book.snapshot()) == {("mastodon", "a")}
    added = book.add(masto("a", "acct", at=1))
    assert added is not None and added.retracted == ()
    assert book.snapshot() == {("mastodon", "a"): ThreadStats("mastodon", "a", 3, 2, 3, 1, 1, 3)}
    assert book.retractions == 1


def test_mastodon_threads_do_not_depend_on_arrival_order() -> None:
    msgs = [
        masto("a", "acct", at=1),
        masto("b", "p1", parent="a", at=2),
        masto("c", "p2", parent="b", at=3),
        masto("d", "acct", parent="c", at=4),
        masto("e", "p3", parent="x", at=5),  # parent never arrives
        masto("f", "p3", parent="e", at=6),
    ]
    expected = book_of(msgs).snapshot()
    assert expected == {
        ("mastodon", "a"): ThreadStats("mastodon", "a", 4, 3, 3, 2, 1, 4),
        ("mastodon", "x"): ThreadStats("mastodon", "x", 2, 2, 1, 0, 5, 6),
    }
    for order in itertools.permutations(msgs):
        assert book_of(list(order)).snapshot() == expected


def test_dm_threads_use_the_conversation_id_or_the_pair() -> None:
    book = book_of(
        [
            make_msg("d1", "dm", "p1", root="conv-1", recipient="acct", at=1),
            make_msg("d2", "dm", "acct", root="conv-1", recipient="p1", at=2),
            make_msg("d3", "dm", "p2", recipient="acct", at=3),
            make_msg("d4", "dm", "acct", recipient="p2", at=4),
        ]
    )
    snap = book.snapshot()
    assert snap[("x", "conv-1")] == ThreadStats("x", "conv-1", 2, 1, 2, 1, 1, 2)
    assert snap[("x", "dm:p2")] == ThreadStats("x", "dm:p2", 2, 1, 2, 1, 3, 4)


def test_a_long_chain_arriving_newest_first_stays_cheap_and_exact() -> None:
    chain = [masto("m0", "acct")] + [masto(f"m{i}", "p1", parent=f"m{i - 1}", at=i) for i in range(1, 400)]
    book = book_of(list(reversed(chain)))
    assert book.snapshot() == {("mastodon", "m0"): ThreadStats("mastodon", "m0", 400, 399, 2, 1, 0, 399)}
    assert book.retractions == 398


def test_an_evicted_provisional_thread_is_named_by_the_post_it_waits_for() -> None:
    book = book_of([masto("c", "p2", parent="b", at=3)])
    assert book.evict_idle(now_ms=150, horizon_ms=100) == [("mastodon", "b")]
    assert book.needs_restore(masto("b", "p1", parent="a", at=2)) == (("mastodon", "b"),)


def test_evicted_ids_are_forgotten_past_a_second_horizon_or_the_cap() -> None:
    """Past the bound the platform is *forgotten*: every thread not in memory is a candidate
    for the store to settle, so nothing evicted is ever taken for a new thread."""
    book = book_of([make_msg(f"r{i}", author="acct", at=i) for i in range(5)])
    book.max_evicted = 2
    assert len(book.evict_idle(now_ms=150, horizon_ms=100)) == 5
    assert list(book.evicted) == [("x", "r3"), ("x", "r4")] and book.forgotten == {"x"}
    assert book.needs_restore(make_msg("n", "reply", "p1", parent="r0", root="r0", at=200)) == (
        ("x", "r0"), ("x", "n"))  # and a provisional thread named after it, if the store has one
    assert book.needs_restore(make_msg("r4", author="acct", at=4)) == (("x", "r4"),)
    book.add(make_msg("r4", author="acct", at=4))  # restored: in memory, no longer a candidate
    assert book.needs_restore(make_msg("m", "reply", "p1", parent="r4", root="r4", at=5)) == (("x", "m"),)
    assert ("x", "r4") not in book.evicted
    book.evict_idle(now_ms=10_000, horizon_ms=100)  # idle for two horizons: ids dropped
    assert book.evicted == {}


def test_rebuild_equals_incremental() -> None:
    msgs = [
        masto("c", "p2", parent="b", at=3),
        masto("a", "acct", at=1),
        masto("b", "p1", parent="a", at=2),
        masto("b", "p1", parent="a", at=2),
    ]
    assert ThreadBook.rebuild("acct", msgs).snapshot() == book_of(msgs).snapshot()


def test_evict_idle_threads_and_restore_them_by_adding_again() -> None:
    old = [make_msg("r", author="acct", at=0), make_msg("a", "reply", "p1", parent="r", root="r", at=10)]
    fresh = [make_msg("s", author="acct", at=1000)]
    book = book_of(old + fresh)
    before = book.snapshot()
    assert book.evict_idle(now_ms=1000, horizon_ms=500) == [("x", "r")]
    assert book.evictions == 1
    assert set(book.snapshot()) == {("x", "s")}
    wake = make_msg("b", "reply", "p2", parent="a", root="r", at=2000)
    assert book.needs_restore(wake) == (("x", "r"),)
    for m in old:  # the caller restores the thread from the store, then adds the new message
        book.add(m)
    assert book.snapshot() == before
    book.add(wake)
    assert book.snapshot()[("x", "r")].depth == 2
    assert book.needs_restore(wake) == ()
