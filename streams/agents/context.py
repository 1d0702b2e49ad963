"""What the agents of one worker share: settings, attribution index, store, metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from clickhouse_connect.driver.client import Client

from streams.agents.metrics import MetricsBuffer
from streams.agents.retry import Backoff, is_transient
from streams.clients import ClientsFile
from streams.normalize.base import AccountIndex
from streams.settings import Settings
from streams.store.client import connect

log = logging.getLogger(__name__)
T = TypeVar("T")

@dataclass
class WorkerContext:
    settings: Settings
    clients: ClientsFile
    store_url: str
    worker_id: str
    index: AccountIndex = field(init=False)
    metrics: MetricsBuffer = field(init=False)

    def __post_init__(self) -> None:
        self.index = AccountIndex.build(self.clients)
        self.metrics = MetricsBuffer(self.worker_id)

    def backoff(self, stage: str) -> Backoff:
        """A backoff for ``stage`` whose retrying state shows in ``pipeline_metrics``."""
        return Backoff(stage, self.metrics.state)

    def store(self) -> Client:
        """A new store client; each agent keeps its own (calls run in worker threads)."""
        return connect(self.store_url, self.settings)


async def durably(call: Callable[[], T], what: str, backoff: Backoff | None = None) -> T:
    """Run a blocking store call in a thread, retrying until the store takes it.

    Transient errors (:func:`streams.agents.retry.is_transient`: the store unreachable,
    refusing for a reason of its own state such as UNKNOWN_TABLE or TOO_MANY_PARTS, or
    writing fewer rows than sent) are retried with exponential backoff, every step logged
    with its error code and shown as the stage's state. Anything else (a data error of
    :mod:`streams.store.errors`, or a bug on these rows) is raised to the caller, which
    isolates and dead-letters the rows instead of stalling on them.
    """
    backoff = backoff or Backoff("store")
    while True:
        try:
            result = await asyncio.to_thread(call)
        except Exception as exc:  # noqa: BLE001
            if not is_transient(exc):
                raise
            await backoff.wait(what, exc)
            continue
        backoff.passed(what)
        return result


def now_ms() -> int:
    return int(time.time() * 1000)
