"""streams.agents.commit.settle: only a record that fails alone is dead-lettered (pure, no faust)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from faust.exceptions import ProducerSendError
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.agents.commit import settle
from streams.agents.retry import Backoff, is_transient


def run(items: list[int], bad: set[int], transient_failures: int = 0) -> tuple[list[int], list[int], int]:
    handled: list[int] = []
    dead: list[int] = []
    flaky = [transient_failures]

    async def handle(batch: list[int]) -> None:
        if flaky[0]:
            flaky[0] -= 1
            raise OperationalError("connection refused")
        if bad & set(batch):
            raise TypeError("Recursion limit reached")
        handled.extend(batch)

    async def dead_letter(item: int, reason: str) -> None:
        assert "TypeError" in reason
        dead.append(item)

    n = asyncio.run(settle(items, handle, dead_letter, "test", Backoff("test", first_s=0.001, max_s=0.001)))
    return handled, dead, n


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=60, unique=True), st.data())
def test_every_good_record_is_handled_once_in_order_and_each_bad_one_dead_lettered(items, data) -> None:
    bad = set(data.draw(st.lists(st.sampled_from(items), max_size=5)))
    handled, dead, n = run(items, bad)
    assert handled == [i for i in items if i not in bad]
    assert sorted(dead) == sorted(bad) and n == len(bad)


def test_transient_errors_are_retried_not_dead_lettered() -> None:
    handled, dead, _ = run([1, 2, 3], set(), transient_failures=3)
    assert handled == [1, 2, 3] and dead == []


def test_cancellation_propagates() -> None:
    async def handle(batch: list[int]) -> None:
        raise asyncio.CancelledError

    async def dead_letter(item: int, reason: str) -> None:  # pragma: no cover - must not run
        raise AssertionError("dead-lettered on cancel")

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(settle([1, 2], handle, dead_letter, "test", Backoff("test")))


def store_error(code: int | None) -> DatabaseError:
    return DatabaseError(f"Code: {code}. DB::Exception: x", code=code)


@pytest.mark.parametrize(("exc", "transient"), [
    (store_error(60), True),  # UNKNOWN_TABLE: not migrated yet
    (store_error(252), True),  # TOO_MANY_PARTS: back-pressure
    (store_error(241), True),  # MEMORY_LIMIT_EXCEEDED
    (store_error(None), True),
    (OperationalError("connection refused"), True),
    (store_error(6), False),  # CANNOT_PARSE_TEXT
    (store_error(117), False),  # INCORRECT_DATA
    (store_error(229), False),  # QUERY_IS_TOO_LARGE: the same statement is refused again
    (store_error(62), False),  # SYNTAX_ERROR
    (store_error(47), True),  # UNKNOWN_IDENTIFIER: a migration adding the column cures it
    (KafkaConnectionError(), True),
    (ConnectionRefusedError(), True),
    (MessageSizeTooLargeError(), False),
    (TypeError("Recursion limit reached"), False),
])
def test_transient_classification(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_a_wrapped_producer_error_is_classified_by_its_cause() -> None:
    for cause, transient in ((KafkaConnectionError(), True), (MessageSizeTooLargeError(), False)):
        try:
            try:
                raise cause
            except Exception as inner:
                raise ProducerSendError("Error while sending") from inner
        except ProducerSendError as exc:
            assert is_transient(exc) is transient


def test_a_statement_too_large_for_its_batch_splits_the_batch_and_is_never_retried_whole() -> None:
    """QUERY_IS_TOO_LARGE is deterministic: halves build smaller statements, nothing is lost."""
    handled: list[int] = []
    sizes: list[int] = []

    async def handle(batch: list[int]) -> None:
        sizes.append(len(batch))
        if len(batch) > 8:
            raise store_error(229)
        handled.extend(batch)

    async def dead_letter(item: int, reason: str) -> None:  # pragma: no cover - must not run
        raise AssertionError(f"dead-lettered: {reason}")

    states: list[str] = []
    backoff = Backoff("sink", lambda stage, state, detail: states.append(state), first_s=0.001, max_s=0.001)
    items = list(range(100))
    assert asyncio.run(settle(items, handle, dead_letter, "test", backoff)) == 0
    assert handled == items
    assert sizes.count(100) == 1 and "retrying" not in states  # never sent twice as it was
