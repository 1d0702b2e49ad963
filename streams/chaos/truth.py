"""What the store must hold after a chaos run, from the lines sent (pure: no I/O).

The truth is what the normalizers make of each line as `rapport replay` publishes it
(source ``replay``): the interaction keys of every good payload, and one dead letter per
hostile line. The check compares the store with this, never with itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.interaction import INTERACTION_COLUMNS
from streams.normalize.base import AccountIndex
from streams.normalize.records import HEADER_RECEIVED_AT, HEADER_SOURCE, RawRecord, normalize_records

Key = tuple[str, str, str, str]  # client_id, account_id, platform, event_id: the table's sort key
KEY_AT = tuple(INTERACTION_COLUMNS.index(c) for c in ("client_id", "account_id", "platform", "event_id"))
_CHUNK = 2000


def expected(platform: str, lines: Iterable[bytes], index: AccountIndex, now_ms: int) -> tuple[set[Key], int]:
    """Interaction keys the pipeline yields for ``lines`` published to ``platform``'s raw
    topic, and how many dead letters they cost."""
    headers = {HEADER_SOURCE: "replay", HEADER_RECEIVED_AT: str(now_ms)}
    out: set[Key] = set()
    dead = 0
    chunk: list[RawRecord] = []

    def flush() -> None:
        nonlocal dead
        batch = normalize_records(chunk, index, now_ms)
        dead += len(batch.dead_letters)
        for env in batch.envelopes.values():
            for row in env["i"]:
                out.add(tuple(str(row[i]) for i in KEY_AT))  # type: ignore[arg-type]
        chunk.clear()

    for n, line in enumerate(lines):
        chunk.append(RawRecord("chaos", 0, n, platform, line, headers, now_ms))
        if len(chunk) >= _CHUNK:
            flush()
    flush()
    return out, dead
