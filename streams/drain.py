"""Waiting until the pipeline has processed and stored everything published so far.

"Processed" is read from the broker: the consumer group's committed offsets reach the
high watermark of every partition of the raw topics, then of ``interactions``. Offsets are
committed only after results are durably written, so that means the store has them, and
that includes detection: the sink acks a batch of ``interactions`` only after the detection
rows, the rollups and the event-time sweep of that batch are written (streams/agents/
sink.py), so a drained replay of history has its deadlines closed up to the last event
time. High watermarks come from Fetch responses, never from ListOffsets, which Tansu
answers wrongly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from kafka.admin import KafkaAdminClient

from streams.errors import StackError
from streams.kafka_admin import bootstrap_of, high_watermarks


def committed_offsets(url: str, group: str) -> dict[tuple[str, int], int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_of(url), client_id="rapport-drain")
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def lag(url: str, group: str, topics: Sequence[str]) -> int:
    """Records published to ``topics`` but not yet committed by ``group``."""
    marks = high_watermarks(url, topics)
    done = committed_offsets(url, group)
    return sum(max(0, hw - done.get(tp, 0)) for tp, hw in marks.items())


def wait_drained(url: str, group: str, stages: Sequence[Sequence[str]], timeout_s: float = 600.0,
                 progress: Callable[[int], None] | None = None,
                 alive: Callable[[], bool] | None = None) -> None:
    """Block until each stage's topics (in order) have no lag for ``group``."""
    deadline = time.monotonic() + timeout_s
    for topics in stages:
        while True:
            remaining = lag(url, group, topics)
            if progress:
                progress(remaining)
            if remaining == 0:
                break
            if alive is not None and not alive():
                raise StackError("the stack stopped while draining; see the logs in the data dir")
            if time.monotonic() > deadline:
                raise StackError(f"not drained after {timeout_s:.0f}s: {remaining} records still pending")
            time.sleep(0.25)
