"""Publishing raw payloads to ``rapport.raw.<platform>``, many per record.

Payloads are kept exactly as received (bytes) and joined into JSON arrays of up to
``publish_batch`` payloads, ``publish_linger_s`` or the payload byte limit
(:func:`streams.limits.payload_max_bytes`): faust's per-record ceiling makes
events-per-record the throughput lever. A line that is not JSON is published alone, so
it dead-letters by itself instead of spoiling the array it would have joined; a payload
over the record limit is refused (a stand-in with its reason is published instead).
Headers (:mod:`streams.contracts.headers`) carry ``source``, ``received_at`` (epoch ms) and
``via_account`` when set, and ``refused`` on a stand-in.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.contracts.headers import HEADER_RECEIVED_AT, HEADER_REFUSED, HEADER_SOURCE, HEADER_VIA_ACCOUNT
from streams.contracts.topics import raw_topic
from streams.errors import StackError
from streams.kafka_admin import bootstrap_of
from streams.limits import payload_max_bytes, producer_max_bytes
from streams.normalize.base import raw_key_of_json
from streams.normalize.records import deep_json
from streams.settings import Settings

MAX_IN_FLIGHT = 256  # records sent but not yet acknowledged, before add() waits
REFUSED_KEEP = 4096  # bytes of a refused (too large) payload its stand-in record keeps


class _Producer:
    """aiokafka on a private event loop thread, behind a synchronous facade.

    kafka-python's producer needed ~20 ms per 140 KB record against Tansu here, aiokafka
    ~1 ms; the facade keeps replay, simulate and tests synchronous and lets async callers
    use it without owning a loop.
    """

    def __init__(self, broker_url: str, max_request_size: int) -> None:
        self.max_request_size = max_request_size
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="rapport-publisher", daemon=True)
        self.thread.start()
        self.in_flight: list[Future[object]] = []
        self.producer: AIOKafkaProducer = self._call(self._start(bootstrap_of(broker_url)))

    async def _start(self, bootstrap: str) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                    max_request_size=self.max_request_size, request_timeout_ms=30_000)
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


def archive_key(decoded: Any) -> str:
    """The archive key the normalizer gives a decoded payload (streams/normalize/records.py)."""
    try:
        return raw_key_of_json(orjson.dumps(decoded))
    except orjson.JSONEncodeError:  # nested deeper than orjson writes
        return raw_key_of_json(deep_json(decoded).encode())


def payload_key(payload: bytes, payload_max: int) -> str:
    """The archive key a single payload (not a JSON-array line) will have once published:
    the same choice :meth:`Publisher.add` makes (its stand-in's key when it is refused)."""
    payload = payload.strip()
    if len(payload) > payload_max:
        return raw_key_of_json(payload[:REFUSED_KEEP].strip())
    try:
        return archive_key(orjson.loads(payload))
    except orjson.JSONDecodeError:
        return raw_key_of_json(payload)


class Publisher:
    """A thin producer that batches payloads per (platform, source)."""

    def __init__(self, settings: Settings, broker_url: str) -> None:
        self.settings = settings
        self.producer = _Producer(broker_url, producer_max_bytes(settings))
        self.payload_max = payload_max_bytes(settings)
        self.closed = False
        # Key: (platform, source, via account, received_at or -1 for "stamp when sent").
        self.pending: dict[tuple[str, str, str, int], list[bytes]] = {}
        self.pending_bytes: dict[tuple[str, str, str, int], int] = {}
        self.refused = 0
        self.keys: list[str] | None = None
        """When a list: the archive key of every payload queued since, in order (replay sets it)."""
        self.pending_since: float | None = None
        self.records = 0
        self.payloads = 0

    def add(self, platform: str, payload: bytes, source: str, received_at: int | None = None,
            via_account: str = "") -> str | None:
        """Queue one line (its bytes as received); flushes full arrays.

        Returns why a payload was refused, or ``None``. A payload over the record limit is
        never sent to fail later: a stand-in holding its first bytes is published with the
        reason in its ``refused`` header, so it is archived as one dead letter. A JSON-array
        line holds many payloads: each is queued on its own (one level only), so a bad one
        costs one dead letter and its good neighbours are stored.
        """
        payload = payload.strip()
        if not payload:
            return None
        if payload[:1] == b"[":
            try:
                decoded = orjson.loads(payload)
            except orjson.JSONDecodeError:
                decoded = None
            if isinstance(decoded, list):
                refused = None
                for item in decoded:
                    try:
                        one = orjson.dumps(item)
                    except orjson.JSONEncodeError:  # nested deeper than orjson writes
                        one = deep_json(item).encode()
                    refused = self._queue(platform, one, source, received_at, via_account) or refused
                return refused
        return self._queue(platform, payload, source, received_at, via_account)

    def _queue(self, platform: str, payload: bytes, source: str, received_at: int | None,
               via_account: str) -> str | None:
        self.payloads += 1
        stamp = received_at if received_at is not None else int(time.time() * 1000)
        if len(payload) > self.payload_max:
            self.refused += 1
            reason = (f"payload of {len(payload):,} bytes is over the record limit of {self.payload_max:,} bytes "
                      f"(RAPPORT_RECORD_MAX_BYTES); its first {REFUSED_KEEP:,} bytes are kept")
            stand_in = payload[:REFUSED_KEEP].strip()
            self._key(raw_key_of_json(stand_in))
            self._send(platform, stand_in, source, stamp, via_account, refused=reason)
            return reason
        try:
            decoded = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self._key(raw_key_of_json(payload))
            self._send(platform, payload, source, stamp, via_account)  # alone: it dead-letters by itself
            return None
        if self.keys is not None:
            self._key(archive_key(decoded))
        key = (platform, source, via_account, -1 if received_at is None else received_at)
        if self.pending_bytes.get(key, 0) + len(payload) + 1 > self.payload_max:
            self._flush_key(key)  # arrays are bounded in bytes too, not only in payloads
        batch = self.pending.setdefault(key, [])
        batch.append(payload)
        self.pending_bytes[key] = self.pending_bytes.get(key, 0) + len(payload) + 1
        if self.pending_since is None:
            self.pending_since = time.monotonic()
        if len(batch) >= self.settings.publish_batch:
            self._flush_key(key)
        return None

    def _key(self, key: str) -> None:
        if self.keys is not None:
            self.keys.append(key)

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
        self.pending_bytes.pop(key, None)
        if not batch:
            return
        platform, source, via, received = key
        if received < 0:
            received = int(time.time() * 1000)
        # A lone payload goes as it is, unless it is an array: that would read as many payloads.
        value = batch[0] if len(batch) == 1 and batch[0][:1] != b"[" else b"[" + b",".join(batch) + b"]"
        self._send(platform, value, source, received, via)

    def _send(self, platform: str, value: bytes, source: str, received: int, via: str,
              refused: str | None = None) -> None:
        headers = [(HEADER_SOURCE, source.encode()), (HEADER_RECEIVED_AT, str(received).encode())]
        if via:
            headers.append((HEADER_VIA_ACCOUNT, via.encode()))
        if refused:
            headers.append((HEADER_REFUSED, refused.encode()))
        self.producer.send(self.settings.topic(raw_topic(platform)), value, headers)
        self.records += 1
