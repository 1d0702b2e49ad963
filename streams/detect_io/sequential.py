"""The sink's steps for one batch, in order and without faust.

`store_interactions` (streams/agents/sink.py) reads where the batch's events already sit,
inserts the interactions and changes, runs detection (prepare, then commit) and writes the
rows and rollups it returns; the agent overlaps some of these. This runs them one after the
other, which is one of the orders the agent allows: what the detection tests drive against
the store, and what `rapport bench` times stage by stage (streams/bench_stages.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from clickhouse_connect.driver.client import Client

from streams.contracts.envelopes import Envelope
from streams.contracts.tables import CHANGES, INTERACTIONS
from streams.detect_io.engine import Batch, Detector, Output
from streams.detect_io.queries import DetectStore
from streams.detect_io.tables import TABLES
from streams.store.writer import TableWriter


class SequentialSink:
    """Writers of the interaction, change and detection tables over one client."""

    def __init__(self, client: Client, store: DetectStore, batch_size: int = 5000) -> None:
        self.store = store
        self.interactions = TableWriter.for_spec(client, INTERACTIONS, batch_size)
        self.changes = TableWriter.for_spec(client, CHANGES, batch_size)
        self.writers = {spec.name: TableWriter.for_spec(client, spec.store_table, batch_size) for spec in TABLES}

    def store_batch(self, envelopes: Sequence[Envelope]) -> Batch:
        """Decode the envelopes, read where their events sat (before inserting, as the sink
        does), insert their interactions and changes."""
        batch = Batch.of(list(envelopes))
        batch.prior_minutes = self.store.minutes_of(batch.event_ids())
        self.interactions.write([row for env in envelopes for row in env.interactions])
        self.changes.write([row for env in envelopes for row in env.changes])
        return batch

    @staticmethod
    def detect(detector: Detector, batch: Batch, clock_ms: int) -> Output:
        return detector.commit(detector.prepare(batch, clock_ms), batch, clock_ms)

    def write(self, out: Output) -> None:
        """The detection rows and the rollups of the touched minutes."""
        for table, rows in out.collector.store_rows(out.version).items():
            self.writers[table].write(rows)
        if out.rollup_scope:
            self.store.recompute_rollup(out.version, out.rollup_accounts, out.rollup_minutes)

    def apply(self, detector: Detector, envelopes: Sequence[Envelope], clock_ms: int) -> Output:
        """All three steps for one batch."""
        out = self.detect(detector, self.store_batch(envelopes), clock_ms)
        self.write(out)
        return out
