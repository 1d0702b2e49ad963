"""Publishing raw payloads to ``rapport.raw.<platform>``, many per record.

Payloads are kept exactly as received (bytes) and joined into JSON arrays of up to
``publish_batch`` payloads or ``publish_linger_s``: faust's per-record ceiling makes
events-per-record the throughput lever. A line that is not JSON is published alone, so
it dead-letters by itself instead of spoiling the array it would have joined.
Headers carry ``source`` and ``received_at`` (epoch ms).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import orjson
from kafka import KafkaProducer

from streams.kafka_admin import bootstrap_of
from streams.normalize.records import HEADER_RECEIVED_AT, HEADER_SOURCE
from streams.settings import Settings
from streams.topics import raw_topic


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
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_of(broker_url), acks="all",
                                      linger_ms=5, max_request_size=16 * 1024 * 1024,
                                      batch_size=1024 * 1024)
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

    def flush(self, timeout_s: float = 60.0) -> None:
        """Send everything queued and wait until the broker has it."""
        self.flush_arrays()
        self.producer.flush(timeout=timeout_s)

    def close(self) -> None:
        self.flush()
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
        self.producer.send(self.settings.topic(raw_topic(platform)), value=value, headers=headers)
        self.records += 1
