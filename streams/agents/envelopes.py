"""Splitting many rows into records the broker takes (pure, no faust).

faust's producer refuses a record over ``producer_max_request_size`` (1,000,000 bytes by
default) with ``MessageSizeTooLargeError``, and an agent that raises crashes *after*
faust has acked its batch: the batch is lost although ``--drain`` then sees it committed.
A backlog makes large records routine (500 raw records of 200 payloads grouped per
account key made 1-5 MB envelopes, and a replay's first detection batch updates thousands
of threads per account), so every record an agent produces goes through here and stays
under :data:`RECORD_BUDGET`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

RECORD_BUDGET = 512 * 1024
"""Bytes per record at most (half the producer's default limit: keys and headers fit)."""


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
