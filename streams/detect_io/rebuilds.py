"""Account rebuilds outside the detection lock, one at a time, each awaited only by its own.

A rebuild reads an account's whole history from the store (:meth:`Detector.load`); under
the detection lock that would stall every other account's batches and the deadline timer
for as long as it reads. Here a rebuild is a task keyed by account: the deadline timer
starts the rebuilds of newly owned accounts and does not wait for them; a batch that names
an account not yet loaded awaits that account's rebuild (the one already running, or a new
one) before it takes the lock, so the batches of that account are applied after its
rebuild, in their order, while accounts already loaded are swept meanwhile. Rebuilds run
one after the other: memory holds one rebuild in progress at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger(__name__)


class Rebuilds:
    """Per-account rebuild tasks around ``run(key)`` (which installs its result itself)."""

    def __init__(self, run: Callable[[str], Awaitable[None]], at_once: int = 1) -> None:
        self.run = run
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.slots = asyncio.Semaphore(at_once)
        self.done = 0

    def start(self, keys: Iterable[str]) -> list[asyncio.Task[None]]:
        """Make sure a rebuild of each key is running or queued; its tasks, in order."""
        out = []
        for key in keys:
            task = self.tasks.get(key)
            if task is None:
                task = self.tasks[key] = asyncio.ensure_future(self._one(key))
                task.add_done_callback(self._finished)
            out.append(task)
        return out

    async def wait(self, keys: Iterable[str]) -> None:
        """Return once every key's rebuild has finished (raising what one raised)."""
        tasks = self.start(keys)
        if tasks:
            await asyncio.gather(*(asyncio.shield(t) for t in tasks))

    async def _one(self, key: str) -> None:
        try:
            async with self.slots:
                await self.run(key)
                self.done += 1
        finally:
            self.tasks.pop(key, None)

    @staticmethod
    def _finished(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning("an account rebuild failed: %s (a later batch or sweep retries it)", task.exception())
