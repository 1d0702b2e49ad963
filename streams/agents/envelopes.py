"""Records the broker takes, and envelopes the sink can store (pure, no faust).

faust's producer refuses a record over ``producer_max_request_size`` with
``MessageSizeTooLargeError`` (before the batch commit of streams/agents/commit.py, an
agent that raised then lost its batch, faust having acked it). A backlog makes large
records routine (500 raw records of 200 payloads grouped per account key made 1-5 MB
envelopes, and a replay's first detection batch updates thousands of threads per
account), so every record an agent produces goes through here and stays within the
record budget (:func:`streams.limits.record_budget`), counted in bytes.
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


def bounded_dead_letter(dead: dict[str, Any], budget: int = RECORD_BUDGET) -> bytes:
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


def envelope_problem(env: Any, interaction_columns: Sequence[str], change_columns: Sequence[str]) -> str | None:
    """Why an ``interactions`` envelope cannot be stored as it is, or ``None``.

    A writer of another version (a rolling upgrade) may send rows of other columns: each
    row must be a list of exactly the columns this version writes, with string keys and
    integer times, else the envelope is one dead letter naming the first wrong row.
    """
    if not isinstance(env, dict):
        return f"envelope is not an object but {type(env).__name__}"
    extra = sorted(set(env) - {"i", "c"})
    if extra:
        return f"envelope has unknown parts {extra[:5]} (expected \"i\" and \"c\")"
    for part, columns in (("i", interaction_columns), ("c", change_columns)):
        rows = env.get(part, [])
        if not isinstance(rows, list):
            return f"envelope part {part!r} is not a list"
        for n, row in enumerate(rows):
            if not isinstance(row, list):
                return f"{part}[{n}] is not a list of values"
            if len(row) != len(columns):
                return (f"{part}[{n}] has {len(row)} values, expected {len(columns)} "
                        f"({', '.join(columns)})")
            for i, name in enumerate(columns):
                value = row[i]
                if name in _STRINGS and not isinstance(value, str):
                    return f"{part}[{n}].{name} is {type(value).__name__}, expected a string"
                if name in _TIMES and not (value is None or (isinstance(value, int) and not isinstance(value, bool))):
                    return f"{part}[{n}].{name} is {type(value).__name__}, expected epoch milliseconds"
    return None


_STRINGS = frozenset({"client_id", "account_id", "platform", "event_id", "kind", "change", "raw_key"})
_TIMES = frozenset({"created_at", "client_created_at", "ingested_at", "edited_at", "changed_at", "version"})
