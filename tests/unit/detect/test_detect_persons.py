"""PersonBook: what memory may forget of a person, and how a batch gets it back."""

from __future__ import annotations

from streams.detect.conversations import ConnectionSummary, ConversationSummary, connection
from streams.detect.persons import PersonBook, StoredPerson

MIN = 60_000


def summary(last_at: int) -> ConversationSummary:
    return ConversationSummary(turns=2, opened_by="person", started_at=last_at - MIN, last_at=last_at)


def book_with(convs: dict[tuple[str, str], int], max_convs: int | None = None) -> PersonBook:
    book = PersonBook(max_convs)
    state = book.setdefault(("x", "p1"))
    state.convs = {tid: summary(at) for tid, at in convs.items()}
    return book


def test_nothing_to_restore_until_something_was_forgotten() -> None:
    book = book_with({("x", "t1"): 10 * MIN})
    assert book.to_restore([("x", "p2")]) == set() and not book.evicted


def test_a_person_named_in_memory_or_with_a_recent_conversation_stays() -> None:
    book = book_with({("x", "t1"): 10 * MIN})
    assert book.evict(named={("x", "p1")}, in_memory=set(), cutoff=100 * MIN) == (0, 0)
    assert book.evict(named=set(), in_memory=set(), cutoff=5 * MIN) == (0, 0)
    assert ("x", "p1") in book and not book.evicted


def test_an_evicted_person_is_restored_whole_when_named_again() -> None:
    book = book_with({("x", "t1"): 10 * MIN})
    book.get(("x", "p1")).handle = "alice"  # type: ignore[union-attr]
    assert book.evict(named=set(), in_memory=set(), cutoff=100 * MIN) == (1, 0)
    assert len(book) == 0 and book.evicted
    assert book.to_restore([("x", "p1"), ("x", "p1")]) == {("x", "p1")}
    stored = StoredPerson("x", "p1", {("x", "t1"): summary(10 * MIN)}, "alice", (9 * MIN, "e1"))
    assert book.restore([stored]) == 1
    state = book.get(("x", "p1"))
    assert state is not None and state.handle == "alice" and state.handle_key == (9 * MIN, "e1")
    assert book.to_restore([("x", "p1")]) == set()  # in memory again


def test_fold_keeps_threads_in_memory_and_recent_conversations() -> None:
    convs = {("x", "old1"): 1 * MIN, ("x", "old2"): 2 * MIN, ("x", "live"): 3 * MIN, ("x", "new"): 200 * MIN}
    book = book_with(convs, max_convs=1)
    gone, folded = book.evict(named={("x", "p1")}, in_memory={("x", "live")}, cutoff=100 * MIN)
    assert (gone, folded) == (0, 2)
    state = book.get(("x", "p1"))
    assert state is not None and set(state.convs) == {("x", "live"), ("x", "new")}
    assert book.partial == {("x", "p1")}
    # The two settled ones live on as one roll-up: counts and sums add, first and last bound.
    assert state.folded == ConnectionSummary(conversations=2, turns=4, first_at=0, last_at=2 * MIN, returning=True,
                                             opened_by_account=0, opened_by_person=2)
    # Named or not, a partial person comes back only when what was folded may change;
    # then memory wins for what it kept and the roll-up goes (the store's rows replace it).
    assert book.to_restore([]) == set() and book.to_restore([("x", "p1")]) == set()
    assert book.to_restore([], woken=[("x", "p1"), ("x", "p2")]) == {("x", "p1")}
    assert book.to_restore([], handles=[(("x", "p1"), "")]) == set()  # the handle it has
    assert book.to_restore([], handles=[(("x", "p1"), "p-one"), (("x", "p2"), "p-two")]) == {("x", "p1")}
    newer = summary(300 * MIN)
    stored = StoredPerson("x", "p1", {tid: summary(at) for tid, at in convs.items()} | {("x", "new"): newer})
    assert book.restore([stored]) == 1
    assert set(state.convs) == set(convs) and state.convs[("x", "new")] == summary(200 * MIN)
    assert book.partial == set() and state.folded is None


def test_fold_is_off_without_a_limit_and_within_it() -> None:
    convs = {("x", f"t{i}"): i * MIN for i in range(5)}
    assert book_with(convs).fold(cutoff=100 * MIN, in_memory=set()) == 0
    assert book_with(convs, max_convs=5).fold(cutoff=100 * MIN, in_memory=set()) == 0


def test_a_partial_person_evicted_whole_is_no_longer_partial() -> None:
    """Otherwise every later batch would read them from the store again, for ever."""
    book = book_with({("x", "t1"): 1 * MIN, ("x", "t2"): 2 * MIN}, max_convs=1)
    book.evict(named={("x", "p1")}, in_memory=set(), cutoff=100 * MIN)
    assert book.partial == {("x", "p1")}
    assert book.evict(named=set(), in_memory=set(), cutoff=100 * MIN) == (1, 0)
    assert book.partial == set() and book.to_restore([]) == set()


def test_the_connection_of_a_partial_person_is_the_roll_up_of_memory_and_the_fold() -> None:
    convs = {("x", f"t{i}"): i * MIN for i in range(1, 6)}
    whole = connection(summary(at) for at in convs.values())
    book = book_with(convs, max_convs=2)
    book.fold(cutoff=3 * MIN, in_memory=set())  # t1, t2 settled; t3-t5 stay
    state = book.get(("x", "p1"))
    assert state is not None and len(state.convs) == 3
    assert connection(state.convs.values(), state.folded) == whole
