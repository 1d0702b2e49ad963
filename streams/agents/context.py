"""What the agents of one worker share: settings, attribution index, store, metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from streams.agents.metrics import MetricsBuffer
from streams.clients import ClientsFile
from streams.normalize.base import AccountIndex
from streams.settings import Settings
from streams.store.client import connect

log = logging.getLogger(__name__)
T = TypeVar("T")

# ClickHouse codes that mean "this data is wrong", not "the store is unreachable".
DATA_ERROR_CODES = {6, 26, 27, 38, 41, 53, 62, 69, 70, 72, 117, 130, 131, 252, 321}


def is_data_error(exc: BaseException) -> bool:
    text = str(exc)
    if not isinstance(exc, DatabaseError) or isinstance(exc, OperationalError):
        return False
    return any(f"Code: {code}." in text or f"code: {code}" in text.lower() for code in DATA_ERROR_CODES)


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

    def store(self) -> Client:
        """A new store client; each agent keeps its own (calls run in worker threads)."""
        return connect(self.store_url, self.settings)


async def durably(call: Callable[[], T], what: str) -> T:
    """Run a blocking store call in a thread, retrying while the store is unreachable.

    Data errors are raised to the caller (they become dead letters); anything else is
    retried with exponential backoff, because acking a batch that was not written would
    lose it.
    """
    delay = 0.2
    while True:
        try:
            return await asyncio.to_thread(call)
        except Exception as exc:  # noqa: BLE001
            if is_data_error(exc):
                raise
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def now_ms() -> int:
    return int(time.time() * 1000)
