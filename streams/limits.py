"""The one record limit, in bytes, and what every producer and consumer derives from it.

``RAPPORT_RECORD_MAX_BYTES`` (:attr:`Settings.record_max_bytes`) is the broker's limit on a
record batch: the compose broker's ``message.max.bytes`` and ``replica.fetch.max.bytes``
(deploy/kafka/kafka.env, cross-checked by tests/unit/test_record_limit.py). Everything else
follows from it, so that no record is ever sent to fail later:

- :func:`producer_max_bytes`: the producers' ``max_request_size`` (the publisher's aiokafka,
  faust's ``producer_max_request_size``), the limit less a batch's framing;
- :func:`payload_max_bytes`: the largest payload the publisher sends; a larger one is
  refused at the edge with its reason (it becomes a dead letter holding its first bytes);
- :func:`record_budget`: what an agent puts in one produced record (envelopes, dead
  letters, output topics), leaving room for the key and headers;
- the consumers fetch up to the limit (faust's ``consumer_max_fetch_size``).
"""

from __future__ import annotations

from streams.settings import Settings

BATCH_FRAMING = 1024
"""Bytes of a record batch that are not the record value (batch header, record header, key)."""
HEADROOM = 16 * 1024
"""Bytes kept free for keys, headers and the array brackets around published payloads."""


def producer_max_bytes(settings: Settings) -> int:
    return settings.record_max_bytes - BATCH_FRAMING


def payload_max_bytes(settings: Settings) -> int:
    return producer_max_bytes(settings) - HEADROOM


def record_budget(settings: Settings) -> int:
    return producer_max_bytes(settings) - HEADROOM
