"""`rapport bench`'s per-stage breakdown: what each step of the path costs per event.

The pipeline figure says how fast the whole path is; this says where its time goes, so the
effect of each throughput lever shows on the stage it targets (issue 11). Each stage runs
alone, in this process, over the same simulated events as the pipeline phase, in the
batches the workers use, against the bench's own store (a database of its own, migrated
fresh, so no stage reads or rewrites what the pipeline phase stored):

- ``decode``: ``orjson.loads`` of the raw records (arrays of payloads, as published);
- ``normalize``: :func:`normalize_records` (decode included: what the normalizer agent does
  per batch before it writes);
- ``archive_insert``: the archive rows into ``raw_events``;
- ``interactions_insert``: the envelopes' interaction and change rows into their tables;
- ``detect``: :meth:`Detector.prepare` + :meth:`Detector.commit` (store reads included), the
  detection of the sink agent;
- ``detection_writes``: the detection rows into their tables, and the rollup recomputation.

Figures are microseconds per event (wall clock). The broker's side (publishing, consuming,
committing) is not in them: ``raw_consume_per_s`` and the pipeline figure hold it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import orjson

from streams.clients import load_clients
from streams.contracts.headers import HEADER_RECEIVED_AT, HEADER_SOURCE, HEADER_VIA_ACCOUNT
from streams.contracts.tables import RAW_EVENTS
from streams.detect_io.engine import Detector
from streams.detect_io.queries import DetectStore
from streams.detect_io.sequential import SequentialSink
from streams.normalize.base import AccountIndex
from streams.normalize.records import RawRecord, normalize_records
from streams.settings import Settings
from streams.simulator.traffic import SimEvent
from streams.store.client import connect
from streams.store.migrations import migrate
from streams.store.writer import TableWriter

STAGES_DATABASE = "rapport_bench_stages"
PAYLOADS_PER_RECORD = 200  # what the publisher joins into one raw record at most
RECORDS_PER_BATCH = 5  # ~1,000 payloads a batch, as the normalizer's take()


class Stopwatch:
    """Seconds spent per stage, added up over the batches."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

    def per_event_us(self, events: int) -> dict[str, float]:
        return {stage: round(s * 1e6 / max(1, events), 2) for stage, s in self.seconds.items()}


def raw_records(events: list[SimEvent], received_ms: int) -> list[RawRecord]:
    """The simulated events as the publisher would have put them on the raw topics."""
    groups: dict[tuple[str, str, str], list[bytes]] = {}
    for e in events:
        groups.setdefault((e.platform, e.source, e.via_account or ""), []).append(orjson.dumps(e.payload))
    records: list[RawRecord] = []
    for (platform, source, via), bodies in groups.items():
        for i in range(0, len(bodies), PAYLOADS_PER_RECORD):
            value = b"[" + b",".join(bodies[i:i + PAYLOADS_PER_RECORD]) + b"]"
            headers = {HEADER_SOURCE: source, HEADER_RECEIVED_AT: str(received_ms), HEADER_VIA_ACCOUNT: via}
            records.append(RawRecord(f"rapport.raw.{platform}", 0, len(records), platform, value, headers,
                                     received_ms))
    return records


def stage_costs(settings: Settings, store_url: str, events: list[SimEvent],
                progress: Callable[[str], None] = lambda _: None,
                database: str = STAGES_DATABASE) -> dict[str, float]:
    """µs per event of each stage over ``events`` (see the module docstring), written to
    ``database`` (created and migrated here: it must not be the pipeline's own)."""
    if database == settings.store_database:
        raise ValueError(f"the stages need a database of their own, not {database!r}")
    migrate(store_url, settings, database=database)
    staged = settings.model_copy(update={"store_database": database})
    if staged.clients is None:
        raise ValueError("stage_costs needs the clients file of the simulated traffic")
    clients = load_clients(staged.clients)
    index = AccountIndex.build(clients)
    client = connect(store_url, staged)
    detect_store = DetectStore(connect(store_url, staged))
    watch = Stopwatch()
    try:
        archive = TableWriter.for_spec(client, RAW_EVENTS, staged.batch_size)
        sink = SequentialSink(client, detect_store, staged.batch_size)
        live_window_ms = int(staged.live_window_s * 1000)
        detector = Detector(clients, detect_store, live_window_ms=live_window_ms,
                            horizon_ms=int(staged.state_horizon_s * 1000), max_evicted=staged.evicted_ids_max,
                            rebuild_page=staged.rebuild_page, max_person_convs=staged.person_conversations_max)
        clock = int(time.time() * 1000)
        records = raw_records(events, clock)
        progress(f"stages: {len(events):,} events in {len(records):,} raw records")
        for start in range(0, len(records), RECORDS_PER_BATCH):
            chunk = records[start:start + RECORDS_PER_BATCH]
            with watch.timing("decode"):
                for rec in chunk:
                    orjson.loads(rec.value)
            with watch.timing("normalize"):
                batch = normalize_records(chunk, index, clock)
            with watch.timing("archive_insert"):
                archive.write(batch.archive_rows)
            with watch.timing("interactions_insert"):
                detect_batch = sink.store_batch(list(batch.envelopes.values()))
            clock += 1
            with watch.timing("detect"):
                out = sink.detect(detector, detect_batch, clock)
            with watch.timing("detection_writes"):
                sink.write(out)
    finally:
        client.close()
        detect_store.client.close()
    return watch.per_event_us(len(events))
