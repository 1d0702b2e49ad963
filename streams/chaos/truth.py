"""What the store must hold after a chaos run, from the lines sent (pure: no I/O).

The truth is what the normalizers make of each line as `rapport replay` publishes it
(source ``replay``): the interaction keys of every good payload, and one dead letter per
hostile line. The check compares the store with this, never with itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator

from streams.contracts.headers import HEADER_RECEIVED_AT, HEADER_SOURCE
from streams.contracts.tables import INTERACTIONS
from streams.normalize.base import AccountIndex
from streams.normalize.records import RawRecord, normalize_records

Key = tuple[str, str, str, str]  # client_id, account_id, platform, event_id: the table's sort key
KEY_OF = INTERACTIONS.reader("client_id", "account_id", "platform", "event_id")
_CHUNK = 2000


def expected(platform: str, lines: Iterable[bytes], index: AccountIndex, now_ms: int) -> tuple[set[Key], int]:
    """Interaction keys the pipeline yields for ``lines`` published to ``platform``'s raw
    topic, and how many dead letters they cost."""
    dead = [0]
    keys = set(expected_keys(platform, lines, index, now_ms, dead.append))
    return keys, sum(dead)


def expected_keys(platform: str, lines: Iterable[bytes], index: AccountIndex, now_ms: int,
                  dead_letters: Callable[[int], object]) -> Iterator[Key]:
    """The interaction keys of ``lines`` one chunk at a time (a key may come twice), so a
    caller can keep digests only; ``dead_letters`` is told each chunk's dead letter count."""
    headers = {HEADER_SOURCE: "replay", HEADER_RECEIVED_AT: str(now_ms)}
    chunk: list[RawRecord] = []

    def flush() -> Iterator[Key]:
        batch = normalize_records(chunk, index, now_ms)
        dead_letters(len(batch.dead_letters))
        chunk.clear()
        for env in batch.envelopes.values():
            for row in env.interactions:
                yield tuple(str(v) for v in KEY_OF(row))  # type: ignore[misc]

    for n, line in enumerate(lines):
        chunk.append(RawRecord("chaos", 0, n, platform, line, headers, now_ms))
        if len(chunk) >= _CHUNK:
            yield from flush()
    yield from flush()


def digest(key: Key) -> bytes:
    """16 bytes standing for an interaction key: a million of them fit in ~100 MB, the keys
    themselves in ~5 times that."""
    return hashlib.blake2b("\x1f".join(key).encode(), digest_size=16).digest()
