"""Rebuild tasks: one per account, one at a time, each awaited only by what needs it."""

from __future__ import annotations

import asyncio

import pytest

from streams.detect_io.rebuilds import Rebuilds


def test_a_batch_waits_for_its_account_only_and_rebuilds_run_one_at_a_time() -> None:
    async def scenario() -> list[str]:
        gates = {"a": asyncio.Event(), "b": asyncio.Event()}
        log: list[str] = []

        async def run(key: str) -> None:
            log.append(f"start {key}")
            await gates[key].wait()
            log.append(f"end {key}")

        rebuilds = Rebuilds(run)
        rebuilds.start(["a", "b"])  # the timer: newly owned accounts, not awaited
        waiter = asyncio.ensure_future(rebuilds.wait(["b"]))  # a batch for b
        await asyncio.sleep(0.01)
        assert log == ["start a"] and not waiter.done()  # b queued behind a: one rebuild at a time
        assert len(rebuilds.start(["a", "a"])) == 2 and len(rebuilds.tasks) == 2  # no second rebuild of a
        log.append("sweep of loaded accounts")  # the timer is not blocked meanwhile
        gates["a"].set()
        await asyncio.sleep(0.01)
        assert not waiter.done()
        gates["b"].set()
        await waiter
        assert rebuilds.tasks == {} and rebuilds.done == 2
        await rebuilds.wait([])  # nothing to wait for
        return log

    assert asyncio.run(scenario()) == ["start a", "sweep of loaded accounts", "end a", "start b", "end b"]


def test_a_failed_rebuild_reaches_its_waiter_and_is_retried_later() -> None:
    async def scenario() -> int:
        calls = 0

        async def run(key: str) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ValueError("bad rows")

        rebuilds = Rebuilds(run)
        with pytest.raises(ValueError, match="bad rows"):
            await rebuilds.wait(["a"])
        await rebuilds.wait(["a"])
        return calls

    assert asyncio.run(scenario()) == 2
