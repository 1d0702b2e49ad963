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
                 alive: Callable[[], bool] | None = None,
                 read_lag: Callable[[Sequence[str]], int] | None = None, poll_s: float = 0.25) -> None:
    """Block until each stage's topics (in order) have no lag for the workers of ``app_id``,
    whichever mode they run in (split or not).

    ``timeout_s`` bounds a *stall*, not the wait: the deadline moves on whenever the lag
    shrinks, so a backlog of any size drains as long as the workers make progress (a total
    time limit made `replay --drain` of a million lines on a busy machine give up while the
    pipeline was still working through it). It is raised only when nothing moved for that long.
    ``read_lag`` replaces the broker read (tests of the loop itself).
    """
    for topics in stages:
        deadline = time.monotonic() + timeout_s
        best: int | None = None
        while True:
            remaining = read_lag(topics) if read_lag else lag(url, app_id, topics)
            if progress:
                progress(remaining)
            if remaining == 0:
                break
            if best is None or remaining < best:
                best, deadline = remaining, time.monotonic() + timeout_s
            if alive is not None and not alive():
                raise StackError("the stack stopped while draining; see the logs in the data dir")
            if time.monotonic() > deadline:
                raise StackError(f"no progress for {timeout_s:.0f}s while draining: {remaining} records "
                                 "still pending; see the worker logs in the data dir")
            time.sleep(poll_s)
