"""`wait_drained` gives up on a stall, never on a backlog that is still shrinking."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from streams.drain import wait_drained
from streams.errors import StackError


def reader(values: Iterator[int]):  # type: ignore[no-untyped-def]
    def read_lag(topics: Sequence[str]) -> int:
        return next(values)
    return read_lag


def test_a_backlog_that_keeps_shrinking_drains_however_long_it_takes() -> None:
    # 40 polls of 10 ms each, every one a little less: 0.4 s in all, ten times the 0.04 s bound.
    lags = iter([*range(40, 0, -1), 0, 0, 99])
    wait_drained("kafka://unused:1", "app", [["raw"], ["interactions"]], timeout_s=0.04,
                 read_lag=reader(lags), poll_s=0.01)
    assert next(lags) == 99  # both stages were read, each to its zero


def test_a_lag_that_does_not_move_is_a_stall_with_its_count() -> None:
    with pytest.raises(StackError, match="no progress for 0s while draining: 7 records"):
        wait_drained("kafka://unused:1", "app", [["raw"]], timeout_s=0.1, read_lag=lambda topics: 7, poll_s=0.01)


def test_a_stopped_stack_ends_the_wait_at_once() -> None:
    with pytest.raises(StackError, match="the stack stopped"):
        wait_drained("kafka://unused:1", "app", [["raw"]], timeout_s=60, read_lag=lambda topics: 3,
                     alive=lambda: False, poll_s=0.01)
