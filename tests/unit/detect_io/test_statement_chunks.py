"""Chunking of id and term lists (streams/detect_io/queries.py): bounded, complete, no duplicates."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.detect_io.queries import chunked, packed

ids = st.lists(st.text(min_size=1, max_size=80), max_size=300)


@given(ids, st.integers(min_value=16, max_value=4096))
def test_chunks_cover_every_value_once_and_stay_within_budget(values: list[str], budget: int) -> None:
    runs = list(chunked(values, budget))
    flat = [v for run in runs for v in run]
    assert flat == sorted(set(values))
    for run in runs:
        size = sum(len(v.encode()) + 4 for v in run)
        assert size <= budget or len(run) == 1  # one value over the budget stands alone


@given(st.lists(st.text(max_size=200), max_size=200), st.integers(min_value=16, max_value=4096))
def test_packed_terms_keep_their_order_and_stay_within_budget(terms: list[str], budget: int) -> None:
    groups = list(packed(terms, budget))
    assert [t for g in groups for t in g] == terms
    for group in groups:
        assert sum(len(t.encode()) + 4 for t in group) <= budget or len(group) == 1
