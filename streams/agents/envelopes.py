"""Records the broker takes: every produced record within the record budget (pure, no faust).

faust's producer refuses a record over ``producer_max_request_size`` with
``MessageSizeTooLargeError`` (before the batch commit of streams/agents/commit.py, an
agent that raised then lost its batch, faust having acked it). A backlog makes large
records routine (500 raw records of 200 payloads grouped per account key made 1-5 MB
envelopes, and a replay's first detection batch updates thousands of threads per
account), so every record an agent produces goes through here and stays within the
record budget (:func:`streams.limits.record_budget`), counted in bytes. What an
``interactions`` envelope holds, and which of them the sink can store, is
:mod:`streams.contracts.envelopes`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

RECORD_BUDGET = 512 * 1024
"""Default bytes per record; agents pass :func:`streams.limits.record_budget` of their settings."""


def split_rows(head: bytes, parts: Mapping[str, Sequence[Any]], tail: bytes = b"}",
               budget: int = RECORD_BUDGET) -> Iterator[bytes]:
    """JSON objects ``head + {"<part>": [rows...], ...} + tail`` of at most ``budget`` bytes.

    ``head`` opens the object (``b"{"`` or ``b'{"client_id":"c",'``); each part is a list
    of rows spread over as many records as needed, every part present (maybe empty) in
    every record, rows kept in order. A single row larger than the budget gets a record
    of its own.
    """
    names = list(parts)
    encoded = {name: [orjson.dumps(row) for row in parts[name]] for name in names}
    fixed = len(head) + len(tail) + sum(len(name) + 6 for name in names)
    current: dict[str, list[bytes]] = {name: [] for name in names}
    size = fixed
    empty = True
    for name in names:
        for row in encoded[name]:
            if not empty and size + len(row) + 1 > budget:
                yield _join(head, current, tail)
                current = {n: [] for n in names}
                size, empty = fixed, True
            current[name].append(row)
            size += len(row) + 1
            empty = False
    if not empty or not any(encoded.values()):
        yield _join(head, current, tail)


def _join(head: bytes, parts: dict[str, list[bytes]], tail: bytes) -> bytes:
    body = b",".join(b'"' + name.encode() + b'":[' + b",".join(rows) + b"]" for name, rows in parts.items())
    return head + body + tail


def bounded_dead_letter(dead: Mapping[str, Any], budget: int = RECORD_BUDGET) -> bytes:
    """The DLQ record of a dead letter, at most ``budget`` bytes once encoded.

    The payload is cut (in code points, so the text stays valid) until the *encoded* record
    fits: JSON escapes make a text longer than its characters (a NUL is 6 bytes, ``\\u0000``).
    The archive keeps the payload whole; ``truncated`` says the record does not.
    """
    value = orjson.dumps(dead)
    if len(value) <= budget:
        return value
    payload = str(dead.get("payload", ""))
    keep = len(payload)
    while True:
        keep = max(0, min(keep - 1, keep * budget // len(value) - 64))
        value = orjson.dumps({**dead, "payload": payload[:keep], "truncated": True})
        if len(value) <= budget or keep == 0:
            return value
