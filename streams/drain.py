"""Waiting until the pipeline has processed and stored everything published so far.

"Processed" is read from the broker: the consumer group's committed offsets reach the
high watermark of every partition of the raw topics, then of ``interactions``. Workers
commit under their role's group (streams/contracts/groups.py: one group for ``all``, one
for ``normalize``, one for ``detect``); a stage's lag is the smallest over those groups,
because only one mode runs at a time and a group that never consumed a topic counts every
record of it as lag. Offsets are committed only after results are durably written, so that
means the store has them, and that includes detection: the sink acks a batch of
``interactions`` only after the detection rows, the rollups and the event-time sweep of that
batch are written (streams/agents/sink.py), so a drained replay of history has its deadlines
closed up to the last event time. High watermarks come from Fetch responses, never from
ListOffsets, which Tansu answers wrongly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from kafka.admin import KafkaAdminClient

from streams.contracts.groups import consumer_groups
from streams.errors import StackError
from streams.kafka_admin import bootstrap_of, high_watermarks


def committed_offsets(url: str, group: str) -> dict[tuple[str, int], int]:
    return committed_by_group(url, [group])[group]


def committed_by_group(url: str, groups: Sequence[str]) -> dict[str, dict[tuple[str, int], int]]:
    """Committed offsets of each group (empty for a group that never committed), one connection."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_of(url), client_id="rapport-drain")
    try:
        out: dict[str, dict[tuple[str, int], int]] = {}
        for group in groups:
            offsets = admin.list_group_offsets(group).get(group, {})
            out[group] = {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    finally:
        admin.close()
    return out


def lags(url: str, groups: Sequence[str], topics: Sequence[str]) -> dict[str, int]:
    """Per group: records published to ``topics`` but not yet committed by it (all of them
    for a group that never committed)."""
    marks = high_watermarks(url, topics)
    done = committed_by_group(url, groups)
    return {group: sum(max(0, hw - offsets.get(tp, 0)) for tp, hw in marks.items())
            for group, offsets in done.items()}


def lag(url: str, app_id: str, topics: Sequence[str]) -> int:
    """Records of ``topics`` not yet processed: the smallest lag over the groups of
    ``app_id``'s worker roles (module docstring)."""
    return min(lags(url, consumer_groups(app_id), topics).values())


def wait_drained(url: str, app_id: str, stages: Sequence[Sequence[str]], timeout_s: float = 600.0,
                 progress: Callable[[int], None] | None = None,
                 alive: Callable[[], bool] | None = None) -> None:
    """Block until each stage's topics (in order) have no lag for the workers of ``app_id``,
    whichever mode they run in (split or not)."""
    deadline = time.monotonic() + timeout_s
    for topics in stages:
        while True:
            remaining = lag(url, app_id, topics)
            if progress:
                progress(remaining)
            if remaining == 0:
                break
            if alive is not None and not alive():
                raise StackError("the stack stopped while draining; see the logs in the data dir")
            if time.monotonic() > deadline:
                raise StackError(f"not drained after {timeout_s:.0f}s: {remaining} records still pending")
            time.sleep(0.25)
