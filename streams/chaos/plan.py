"""What `rapport chaos` will do, decided up front from the seed (pure: no I/O, no clock).

A run is a list of traffic lines per platform (simulated payloads with hostile ones mixed
in) and a schedule of faults. Same seed, same arguments, same plan, so a failing run can be
replayed exactly; only the moments the processes reach (how far the traffic has got when a
fault lands) depend on the machine.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Every fault the harness injects. "broker_kill" and "stack_kill" take the stack down;
# the harness then starts `rapport up` again on the same data dir.
FAULT_KINDS: tuple[str, ...] = ("worker_kill", "worker_term", "store_stop", "broker_kill", "stack_kill")
STORE_STOP_S = (2.0, 5.0)  # how long the store stays SIGSTOPped (seconds, drawn in this range)


@dataclass(frozen=True, slots=True)
class Fault:
    at_s: float  # seconds after the traffic started
    kind: str
    target: int  # which worker (index among the live ones, modulo their count)
    pause_s: float  # for store_stop: how long the store stays stopped


def plan_faults(count: int, seed: int, span_s: float) -> list[Fault]:
    """``count`` faults at seeded moments in the middle 90 % of ``span_s``, sorted by time.

    Every kind comes once before any repeats (so ``count >= len(FAULT_KINDS)`` covers them
    all), in a seeded order; the rest are drawn uniformly.
    """
    rng = random.Random(seed)
    kinds = list(FAULT_KINDS)
    rng.shuffle(kinds)
    chosen = kinds[:count] + [rng.choice(FAULT_KINDS) for _ in range(max(0, count - len(kinds)))]
    moments = sorted(rng.uniform(0.05, 0.95) * span_s for _ in chosen)
    return [Fault(at_s=round(at, 3), kind=kind, target=rng.randrange(1 << 16),
                  pause_s=round(rng.uniform(*STORE_STOP_S), 2))
            for at, kind in zip(moments, chosen, strict=True)]


def nested_objects(depth: int) -> bytes:
    """A JSON object nested ``depth`` levels deep (orjson refuses deeper than 255)."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def nested_arrays(depth: int) -> bytes:
    """A payload that is an array nested ``depth`` deep, inside a one-payload array line."""
    return b"[" + b"[" * depth + b"1" + b"]" * depth + b"]"


def hostile_payloads() -> list[tuple[str, bytes]]:
    """Lines that must each become one dead letter whatever the platform (name, line).

    Each differs from the others so each has its own archive key.
    """
    return [
        ("nested_objects_300", nested_objects(300)),
        ("nested_arrays_1000", nested_arrays(1000)),
        ("nested_objects_100000", nested_objects(100_000)),
        ("invalid_utf8", b'{"id":"chaos-u8","text":"\xff\xfe"}'),
        ("truncated", b'{"id":"chaos-trunc","text":"cut he'),
        # 262,144 NULs escape to 1.57 MB: over the record limit, refused at the edge with its
        # reason and archived as a dead letter through its stand-in.
        ("nul_text", b'{"id":"chaos-nul","text":"' + b"\\u0000" * 262_144 + b'"}'),
    ]


def mix_in(lines: list[bytes], hostile: list[bytes], seed: int) -> list[bytes]:
    """``lines`` with ``hostile`` inserted at seeded positions (order of both kept)."""
    return list(mixed(lines, len(lines), hostile, seed))


def mixed(lines: Iterable[bytes], count: int, hostile: list[bytes], seed: int) -> Iterator[bytes]:
    """The ``count`` ``lines`` with ``hostile`` inserted at seeded positions, streamed (the
    same positions as :func:`mix_in` for the same count and seed)."""
    rng = random.Random(seed ^ 0x5EED)
    positions = sorted(rng.randrange(count + 1) for _ in hostile)
    todo = list(zip(positions, hostile, strict=True))
    n = 0
    for line in lines:
        while todo and todo[0][0] == n:
            yield todo.pop(0)[1]
        yield line
        n += 1
    for _, bad in todo:
        yield bad
