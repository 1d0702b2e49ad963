"""Per-minute pipeline counters, flushed to ``pipeline_metrics`` by a timer.

Counting in memory and flushing every few seconds keeps the hot path free of extra store
calls (each chDB insert costs ~20 ms whatever its size). Each flush's rows carry one
``written_at`` in ms, strictly increasing per buffer: it is the flush's identity in the
table's key (migration 0009), so an insert retried with the same rows replaces itself
instead of counting twice.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.contracts.tables import PIPELINE_METRICS

COLUMNS = PIPELINE_METRICS.columns  # what each row of drain() holds, in order
OK, RETRYING = "ok", "retrying"


@dataclass
class Counters:
    records_in: int = 0
    events_in: int = 0
    events_out: int = 0
    dead_lettered: int = 0
    skipped: int = 0


class MetricsBuffer:
    """Counters per (minute, stage, topic) and the last processed offset per partition."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.counters: dict[tuple[int, str, str], Counters] = defaultdict(Counters)
        self.positions: dict[tuple[str, str, int], int] = {}  # (stage, topic, partition) -> next offset
        self.changed: set[str] = set()
        self.states: dict[str, tuple[str, str]] = {}  # stage -> (state, detail), last reported
        self.last_written_ms = 0  # written_at of the previous flush: the next one is later

    def state(self, stage: str, state: str, detail: str) -> None:
        """A stage's state: ``retrying`` (with the error) while a call is retried, ``ok`` after.

        Every flushed row carries its stage's state; a stage that changed state gets a row
        of its own even when it counted nothing (a stalled stage counts nothing).
        """
        self.states[stage] = (state, detail)
        self.changed.add(stage)

    def add(self, stage: str, topic: str, *, records_in: int = 0, events_in: int = 0,
            events_out: int = 0, dead_lettered: int = 0, skipped: int = 0) -> None:
        minute = int(time.time()) // 60 * 60
        c = self.counters[(minute, stage, topic)]
        c.records_in += records_in
        c.events_in += events_in
        c.events_out += events_out
        c.dead_lettered += dead_lettered
        c.skipped += skipped

    def position(self, stage: str, topic: str, partition: int, offset: int) -> None:
        key = (stage, topic, partition)
        if offset + 1 > self.positions.get(key, -1):
            self.positions[key] = offset + 1

    def drain(self, highwater: Callable[[str, int], int | None]) -> list[list[Any]]:
        """Rows to insert (counters reset); lag per (stage, topic) from high watermarks."""
        lag: dict[tuple[str, str], int] = defaultdict(int)
        for (stage, topic, partition), nxt in self.positions.items():
            hw = highwater(topic, partition)
            if hw is not None:
                lag[(stage, topic)] += max(0, hw - nxt)
        now_ms = max(time.time_ns() // 1_000_000, self.last_written_ms + 1)
        self.last_written_ms = now_ms
        minute_now_ms = now_ms // 60_000 * 60_000
        rows: list[list[Any]] = []
        seen: set[tuple[str, str]] = set()

        def state_of(stage: str) -> list[str]:
            return list(self.states.get(stage, (OK, "")))

        for (minute, stage, topic), c in sorted(self.counters.items()):
            seen.add((stage, topic))
            rows.append([minute * 1000, self.worker_id, stage, topic, c.records_in, c.events_in,
                         c.events_out, c.dead_lettered, c.skipped, lag.get((stage, topic), 0), now_ms,
                         *state_of(stage)])
        for (stage, topic), value in lag.items():
            if (stage, topic) not in seen:
                seen.add((stage, topic))
                rows.append([minute_now_ms, self.worker_id, stage, topic, 0, 0, 0, 0, 0, value, now_ms,
                             *state_of(stage)])
        stages = {stage for stage, _ in seen}
        for stage in sorted(self.changed | {s for s, (st, _) in self.states.items() if st != OK}):
            if stage not in stages:
                rows.append([minute_now_ms, self.worker_id, stage, "", 0, 0, 0, 0, 0, 0, now_ms,
                             *state_of(stage)])
        self.changed.clear()
        self.counters.clear()
        return rows
