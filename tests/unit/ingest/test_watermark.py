"""The contiguous resume point against a brute-force model (hypothesis), and its file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.ingest.resume import ResumeBook, reached
from streams.ingest.watermark import Watermark


def test_safe_stops_before_the_first_unarchived_item() -> None:
    mark = Watermark()
    for pos in (10, 20, 30):
        mark.published(pos, f"k{pos}")
        mark.covered(pos)
    mark.covered(35)
    assert mark.safe == 9
    mark.confirm(["k20", "k30"])  # archived out of order: the oldest is still missing
    assert mark.safe == 9
    mark.confirm(["k10"])
    assert mark.safe == 35 and mark.pending() == []


def test_a_loaded_point_only_moves_forward_unless_an_older_item_is_pending() -> None:
    mark = Watermark(safe=100)
    mark.covered(50)
    assert mark.safe == 100
    mark.published(80, "late")  # an item older than the resume point, not archived yet
    assert mark.safe == 79
    mark.confirm(["late"])
    mark.covered(120)
    assert mark.safe == 120


ops = st.lists(st.one_of(
    st.tuples(st.just("pub"), st.integers(0, 50)),
    st.tuples(st.just("confirm"), st.integers(0, 50)),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_safe_never_passes_an_unarchived_item_and_reaches_the_end_when_all_are(script: list[tuple[str, int]]) -> None:
    """Model: items published in position order (Jetstream), archived in any order."""
    mark = Watermark()
    position = 0
    published: dict[str, int] = {}
    archived: set[str] = set()
    for op, n in script:
        if op == "pub":
            position += 1 + n
            key = f"k{position}"
            published[key] = position
            mark.published(position, key)
            mark.covered(position)
        elif published:
            key = sorted(published)[n % len(published)]
            archived.add(key)
            mark.confirm([key])
        missing = [p for k, p in published.items() if k not in archived]
        if mark.safe is not None:
            assert all(p > mark.safe for p in missing)
        if not missing and published:
            assert mark.safe == position


def test_the_book_saves_only_confirmed_points(tmp_path: Path) -> None:
    path = tmp_path / "cursors" / "bluesky.json"
    book = ResumeBook(path, "bluesky")
    assert not book.known("stream")
    mark = book.mark("stream")
    mark.published(5, "a")
    mark.covered(7)
    assert book.save() and ResumeBook(path, "bluesky").mark("stream").safe == 4
    mark.confirm(["a"])
    assert book.save() and not book.save()  # unchanged: not written again
    assert ResumeBook(path, "bluesky").known("stream") and ResumeBook(path, "bluesky").mark("stream").safe == 7
    path.write_text("{not json")
    assert not ResumeBook(path, "bluesky").known("stream")  # unreadable: resume from the archive


def test_confirm_once_asks_the_archive_per_key(tmp_path: Path) -> None:
    class Archive:
        async def archived_keys(self, platform: str, keys: list[str]) -> set[str]:
            assert platform == "bluesky"
            return {k for k in keys if k != "b"}

    book = ResumeBook(tmp_path / "c.json", "bluesky")
    mark = book.mark("stream")
    for pos, key in ((1, "a"), (2, "b"), (3, "c")):
        mark.published(pos, key)
        mark.covered(pos)
    asyncio.run(book.confirm_once(Archive()))  # type: ignore[arg-type]
    assert mark.safe == 1 and mark.pending() == ["b"]


def test_paging_back_reads_the_items_created_in_the_watermarks_own_millisecond() -> None:
    # Read up to t=500 (the item there archived); another item created at t=500 appears later.
    mark = Watermark()
    mark.published(500, "first")
    mark.covered(500)
    mark.confirm(["first"])
    assert mark.safe == 500
    assert not reached(mark, 500, kept=False), "the newcomer of the same millisecond would be skipped"
    assert not reached(mark, 500, kept=True)  # a kept one is skipped, paging goes on
    assert reached(mark, 499, kept=False)
    assert not reached(Watermark(), 400, kept=False) and reached(Watermark(), 400, kept=True)


class SlowArchive:
    """Archives a key only on the ``delay``-th question about it (``never``: not at all)."""

    def __init__(self, delay: int, never: frozenset[str] = frozenset()) -> None:
        self.delay, self.never, self.asked = delay, never, 0

    async def archived_keys(self, platform: str, keys: list[str]) -> set[str]:
        self.asked += 1
        return {k for k in keys if k not in self.never} if self.asked >= self.delay else set()


def published_book(path: Path) -> ResumeBook:
    book = ResumeBook(path, "mastodon")
    mark = book.mark("user")
    for pos, key in ((1, "a"), (2, "b"), (3, "c")):
        mark.published(pos, key)
        mark.covered(pos)
    return book


def test_a_clean_stop_settles_the_points_past_what_the_archive_takes_in_meanwhile(tmp_path: Path) -> None:
    book = published_book(tmp_path / "m.json")
    archive = SlowArchive(delay=3)
    left = asyncio.run(book.settle(archive, "mastodon", timeout_s=5.0, interval_s=0.01))  # type: ignore[arg-type]
    assert left == 0 and archive.asked == 3
    assert ResumeBook(tmp_path / "m.json", "mastodon").mark("user").safe == 3


def test_settling_gives_up_at_its_deadline_and_saves_what_is_confirmed(tmp_path: Path) -> None:
    book = published_book(tmp_path / "m.json")
    left = asyncio.run(book.settle(SlowArchive(delay=1, never=frozenset({"b"})), "mastodon",  # type: ignore[arg-type]
                                   timeout_s=0.3, interval_s=0.01))
    assert left == 1  # b is fetched again at the next start: a re-fetch, never a gap
    assert ResumeBook(tmp_path / "m.json", "mastodon").mark("user").safe == 1
