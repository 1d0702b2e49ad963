"""The one batch commit of every agent: offsets move only past batches that are durable.

What faust-streaming 0.15.3 does on its own (read in its source, docs/architecture.md
"Batch commit"): ``Stream.take_events`` (faust/streams.py) acks every event of a batch in
a ``finally`` around its ``yield``, so an agent body that raises or is cancelled while
holding a batch acks it all the same when the generator is closed; ``Agent.on_stop``
(faust/agents/agent.py) cancels the actor "and this forces the stream to ack"; and
``App._stop_consumer`` / ``Consumer.wait_empty`` (faust/app/base.py,
faust/transport/consumer.py) then commit every acked offset on shutdown and rebalance. A
plain ``take_events`` loop therefore commits batches that were never written.

The rule as built: :func:`run_batches` takes one reference on every message of a batch
(``Message.incref``) before the agent sees it, and gives it back (``Event.ack``, which
only decrements) after the batch's handler returned, i.e. after its archive rows, its
produced records (flushed and acknowledged by the broker) and its store writes are
durable. faust's own ack in ``take_events``' ``finally`` then is the *final* one, the
only one that reaches ``Consumer.ack``; on an exception or a cancellation the reference
is never given back, the offset never enters the consumer's acked list, and faust's
commit (``Consumer._new_offset``: up to the first gap) cannot pass it. The batch is
redelivered from the committed offset by the next owner of the partition.

Inside the batch, :func:`settle` keeps one bad record from failing its neighbours:
transient errors (store unreachable, broker unavailable) are retried with backoff until
they pass or the worker stops, logging every step; any other exception splits the batch
in halves until the record that raises is alone, and that record becomes one dead letter
naming the exception. No exception leaves the loop, so faust never restarts the actor
past an unfinished batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from streams.agents.retry import Backoff, describe, is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")

Handler = Callable[[Sequence[T]], Awaitable[None]]
DeadLetter = Callable[[T, str], Awaitable[None]]


async def retrying(call: Callable[[], Awaitable[None]], what: str, backoff: Backoff) -> None:
    """Await ``call()`` until it returns, retrying transient errors; others are raised."""
    while True:
        try:
            await call()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_transient(exc):
                raise
            await backoff.wait(what, exc)
            continue
        backoff.passed(what)
        return


async def settle(items: Sequence[T], handle: Handler[T], dead_letter: DeadLetter[T], what: str,
                 backoff: Backoff) -> int:
    """Handle ``items`` so that only a record that fails alone is lost to a dead letter.

    Returns the number of records dead-lettered here. Halves are handled in order, so a
    batch's order survives the split. ``CancelledError`` always propagates.
    """
    try:
        await retrying(lambda: handle(items), what, backoff)
        return 0
    except Exception as exc:  # noqa: BLE001 - not transient: isolate the record that raises
        if len(items) == 1:
            reason = f"processing failed: {describe(exc)}"
            log.error("%s: one record fails alone (%s); dead-lettering it", what, reason)
            await retrying(lambda: dead_letter(items[0], reason), f"{what} (dead letter)", backoff)
            return 1
        log.warning("%s: a batch of %d records failed (%s); retrying it in halves", what, len(items),
                    describe(exc))
    mid = len(items) // 2
    return (await settle(items[:mid], handle, dead_letter, what, backoff)
            + await settle(items[mid:], handle, dead_letter, what, backoff))


def hold(events: Sequence[Any]) -> None:
    """Keep faust from final-acking these events: their offsets cannot be committed."""
    for event in events:
        event.message.incref()


def release(events: Sequence[Any]) -> None:
    """Give the held references back; faust's own ack of the batch is then the final one."""
    for event in events:
        event.ack()


async def run_batches(stream: Any, max_: int, within: float, handle: Handler[Any],
                      dead_letter: DeadLetter[Any], what: str, backoff: Backoff) -> None:
    """The batch loop of an agent: take, hold, settle, release (see the module docstring).

    ``handle`` gets faust events and must be idempotent (it may run again on a redelivery
    or on a half of its batch); ``dead_letter`` makes one event a durable dead letter.
    """
    async for events in stream.take_events(max_, within=within):
        hold(events)
        try:
            await settle(events, handle, dead_letter, what, backoff)
        except asyncio.CancelledError:
            log.warning("%s: stopped mid-batch; %d records left uncommitted for redelivery", what,
                        len(events))
            raise
        release(events)
