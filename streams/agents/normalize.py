"""Agent ``normalize_payloads``: raw topics -> archive + ``interactions`` + DLQ.

For each batch: normalize (pure), archive every payload in ``raw_events`` (durable: in
the embedded default the broker keeps topics in memory only), publish one envelope per
account key and every dead letter, and wait until the broker has them. The batch is
committed only then (:mod:`streams.agents.commit`); an exception or a stop before that
leaves it uncommitted for redelivery, which the archive and the ReplacingMergeTree tables
absorb.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import faust

from streams.agents.commit import run_batches
from streams.agents.context import WorkerContext, durably, now_ms
from streams.agents.envelopes import bounded_dead_letter, split_rows
from streams.clients import PLATFORMS
from streams.contracts.envelopes import envelope_head
from streams.contracts.tables import RAW_EVENTS
from streams.contracts.topics import DLQ, INTERACTIONS, platform_of, raw_topic
from streams.limits import record_budget
from streams.normalize.records import RawRecord, dead_record, normalize_records
from streams.store.writer import TableWriter

log = logging.getLogger(__name__)
STAGE = "normalize"


def _headers(message: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in message.headers or ():
        if isinstance(value, bytes | bytearray):
            value = value.decode("utf-8", errors="replace")
        out[str(key)] = str(value)
    return out


def register(app: faust.App, ctx: WorkerContext) -> None:
    settings = ctx.settings
    budget = record_budget(settings)  # bytes per produced record, and per row
    prefix = settings.topic(raw_topic(""))
    raw = app.topic(*(settings.topic(raw_topic(p)) for p in PLATFORMS))
    interactions = app.topic(settings.topic(INTERACTIONS))
    dlq = app.topic(settings.topic(DLQ))
    archive = TableWriter.for_spec(ctx.store(), RAW_EVENTS, settings.batch_size)
    head = envelope_head(settings.envelope_version)  # 1 while workers that read only 1 remain

    def raw_record(msg: Any) -> RawRecord:
        return RawRecord(topic=msg.topic, partition=msg.partition, offset=msg.offset,
                         platform=platform_of(msg.topic, settings), value=msg.value or b"",
                         headers=_headers(msg), received_at_fallback=int((msg.timestamp or 0) * 1000))

    async def handle(events: Sequence[Any]) -> None:
        """One batch: normalize, archive, produce and wait for the broker's acknowledgements."""
        records = [raw_record(event.message) for event in events]
        batch = normalize_records(records, ctx.index, now_ms(), budget)
        rows = batch.archive_rows
        await durably(lambda: archive.write(rows), "archiving raw payloads", ctx.backoff(STAGE))
        futures = []
        for key in sorted(batch.envelopes):
            # One envelope per key, split when it would exceed the producer's record limit.
            for value in split_rows(head, batch.envelopes[key].parts(), budget=budget):
                futures.append(await interactions.send(key=key.encode(), value=value))
        for dead in batch.dead_letters:
            log.warning("dead letter from %s[%s] offset=%s: %s", dead["topic"], dead["partition"],
                        dead["offset"], dead["reason"])
            futures.append(await dlq.send(key=dead["platform"].encode(), value=bounded_dead_letter(dead, budget)))
        for fut in futures:
            await fut
        for rec in records:
            ctx.metrics.position(STAGE, rec.topic, rec.partition, rec.offset)
        by_topic: dict[str, int] = {}
        for rec in records:
            by_topic[rec.topic] = by_topic.get(rec.topic, 0) + 1
        for topic, n in by_topic.items():
            ctx.metrics.add(STAGE, topic, records_in=n)
        ctx.metrics.add(STAGE, prefix + "*", events_in=batch.payloads, events_out=batch.events_out,
                        dead_lettered=len(batch.dead_letters), skipped=batch.skipped)

    async def dead_letter(event: Any, reason: str) -> None:
        """A raw record that fails alone: archived whole as ``dead``, and on the DLQ topic."""
        rec = raw_record(event.message)
        row, dead = dead_record(rec, reason, now_ms())
        await durably(lambda: archive.write([row]), "archiving a dead letter", ctx.backoff(STAGE))
        await (await dlq.send(key=rec.platform.encode(), value=bounded_dead_letter(dead, budget)))
        ctx.metrics.position(STAGE, rec.topic, rec.partition, rec.offset)
        ctx.metrics.add(STAGE, rec.topic, records_in=1)
        ctx.metrics.add(STAGE, prefix + "*", events_in=1, dead_lettered=1)

    @app.agent(raw, name="normalize_payloads")
    async def normalize_payloads(stream: Any) -> None:  # faust.Stream: take_events is not in StreamT
        await run_batches(stream, 500, min(0.1, settings.batch_delay_s), handle, dead_letter,
                          "normalize_payloads", ctx.backoff(STAGE))

