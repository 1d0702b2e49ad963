"""Publishing raw payloads to ``rapport.raw.<platform>``, many per record.

Payloads are kept exactly as received (bytes) and joined into JSON arrays of up to
``publish_batch`` payloads or ``publish_linger_s``: faust's per-record ceiling makes
events-per-record the throughput lever. A line that is not JSON is published alone, so
it dead-letters by itself instead of spoiling the array it would have joined.
Headers carry ``source`` and ``received_at`` (epoch ms).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future

import orjson
from aiokafka import AIOKafkaProducer

from streams.errors import StackError
from streams.kafka_admin import bootstrap_of
from streams.normalize.records import HEADER_RECEIVED_AT, HEADER_SOURCE
from streams.settings import Settings
from streams.topics import raw_topic

MAX_IN_FLIGHT = 256  # records sent but not yet acknowledged, before add() waits


class _Producer:
    """aiokafka on a private event loop thread, behind a synchronous facade.

    kafka-python's producer needed ~20 ms per 140 KB record against Tansu here, aiokafka
    ~1 ms; the facade keeps replay, simulate and tests synchronous and lets async callers
    use it without owning a loop.
    """

    def __init__(self, broker_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="rapport-publisher", daemon=True)
        self.thread.start()
        self.in_flight: list[Future[object]] = []
        self.producer: AIOKafkaProducer = self._call(self._start(bootstrap_of(broker_url)))

    async def _start(self, bootstrap: str) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                    max_request_size=16 * 1024 * 1024, request_timeout_ms=30_000)
        try:
            await producer.start()
        except Exception as exc:
            await producer.stop()
            raise StackError(f"cannot reach the broker at {bootstrap}: {exc}") from exc
        return producer

    def _call(self, coro: object, timeout_s: float | None = 60.0) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)  # type: ignore[arg-type]

    async def _send(self, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> object:
        delivery = await self.producer.send(topic, value=value, headers=headers)
        return await delivery

    def send(self, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.in_flight.append(asyncio.run_coroutine_threadsafe(self._send(topic, value, headers), self.loop))
        if len(self.in_flight) >= MAX_IN_FLIGHT:
            self.wait(len(self.in_flight) // 2)

    def wait(self, keep: int = 0) -> None:
        """Wait until at most ``keep`` records are unacknowledged; raise on a failed delivery."""
        while len(self.in_flight) > keep:
            fut = self.in_flight.pop(0)
            try:
                fut.result(120)
            except Exception as exc:  # noqa: BLE001
                raise StackError(f"the broker did not take a record: {exc}") from exc

    def close(self) -> None:
        try:
            self.wait()
            self._call(self.producer.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


class Publisher:
    """A thin producer that batches payloads per (platform, source)."""

    def __init__(self, settings: Settings, broker_url: str) -> None:
        self.settings = settings
        self.producer = _Producer(broker_url)
        self.closed = False
        # Key: (platform, source, via account, received_at or -1 for "stamp when sent").
        self.pending: dict[tuple[str, str, str, int], list[bytes]] = {}
        self.pending_since: float | None = None
        self.records = 0
        self.payloads = 0

    def add(self, platform: str, payload: bytes, source: str, received_at: int | None = None,
            via_account: str = "") -> None:
        """Queue one payload (its bytes as received); flushes full arrays."""
        payload = payload.strip()
        if not payload:
            return
        self.payloads += 1
        if not is_json(payload):
            stamp = received_at if received_at is not None else int(time.time() * 1000)
            self._send(platform, payload, source, stamp, via_account)
            return
        key = (platform, source, via_account, -1 if received_at is None else received_at)
        batch = self.pending.setdefault(key, [])
        batch.append(payload)
        if self.pending_since is None:
            self.pending_since = time.monotonic()
        if len(batch) >= self.settings.publish_batch:
            self._flush_key(key)

    def add_many(self, platform: str, payloads: Iterable[bytes], source: str) -> None:
        for payload in payloads:
            self.add(platform, payload, source)

    def tick(self) -> None:
        """Flush arrays older than the linger time (call from the publishing loop)."""
        if self.pending_since is not None and time.monotonic() - self.pending_since >= self.settings.publish_linger_s:
            self.flush_arrays()

    def flush_arrays(self) -> None:
        for key in list(self.pending):
            self._flush_key(key)
        self.pending_since = None

    def flush(self) -> None:
        """Send everything queued and wait until the broker has it."""
        self.flush_arrays()
        self.producer.wait()

    def close(self) -> None:
        if self.closed:
            return
        self.flush_arrays()
        self.closed = True
        self.producer.close()

    def _flush_key(self, key: tuple[str, str, str, int]) -> None:
        batch = self.pending.pop(key, [])
        if not batch:
            return
        platform, source, via, received = key
        if received < 0:
            received = int(time.time() * 1000)
        value = batch[0] if len(batch) == 1 else b"[" + b",".join(batch) + b"]"
        self._send(platform, value, source, received, via)

    def _send(self, platform: str, value: bytes, source: str, received: int, via: str) -> None:
        headers = [(HEADER_SOURCE, source.encode()), (HEADER_RECEIVED_AT, str(received).encode())]
        if via:
            headers.append(("via_account", via.encode()))
        self.producer.send(self.settings.topic(raw_topic(platform)), value, headers)
        self.records += 1
