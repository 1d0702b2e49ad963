"""Agent ``normalize_payloads``: raw topics -> archive + ``interactions`` + DLQ.

For each batch: normalize (pure), archive every payload in ``raw_events`` (durable: in
the embedded default the broker keeps topics in memory only), publish one envelope per
account key and every dead letter, wait until the broker has them, and only then let faust
ack the batch. A crash anywhere before the ack means redelivery, which the archive and the
ReplacingMergeTree tables absorb.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
import orjson

from streams.agents.context import WorkerContext, durably, now_ms
from streams.agents.envelopes import split_rows
from streams.clients import PLATFORMS
from streams.normalize.records import ARCHIVE_COLUMNS, RawRecord, normalize_records
from streams.store.writer import TableWriter
from streams.topics import DLQ, INTERACTIONS, raw_topic

log = logging.getLogger(__name__)
STAGE = "normalize"
DLQ_PAYLOAD_MAX = 256 * 1024  # characters of a dead payload on the DLQ topic (records stay < 1 MB)


def _headers(message: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in message.headers or ():
        if isinstance(value, bytes | bytearray):
            value = value.decode("utf-8", errors="replace")
        out[str(key)] = str(value)
    return out


def register(app: faust.App, ctx: WorkerContext) -> None:
    settings = ctx.settings
    prefix = settings.topic(raw_topic(""))
    raw = app.topic(*(settings.topic(raw_topic(p)) for p in PLATFORMS))
    interactions = app.topic(settings.topic(INTERACTIONS))
    dlq = app.topic(settings.topic(DLQ))
    archive = TableWriter(ctx.store(), "raw_events", ARCHIVE_COLUMNS, ("received_at", "archived_at"),
                          "received_at", settings.batch_size)

    @app.agent(raw, name="normalize_payloads")
    async def normalize_payloads(stream: Any) -> None:  # faust.Stream: take_events is not in StreamT
        async for events in stream.take_events(500, within=min(0.1, settings.batch_delay_s)):
            records = []
            for event in events:
                msg = event.message
                records.append(RawRecord(
                    topic=msg.topic, partition=msg.partition, offset=msg.offset,
                    platform=msg.topic.removeprefix(prefix), value=msg.value or b"",
                    headers=_headers(msg), received_at_fallback=int((msg.timestamp or 0) * 1000),
                ))
            batch = normalize_records(records, ctx.index, now_ms())
            rows = batch.archive_rows
            await durably(lambda: archive.write(rows), "archiving raw payloads")  # noqa: B023
            futures = []
            for key in sorted(batch.envelopes):
                env = batch.envelopes[key]
                # One envelope per key, split when it would exceed the producer's record limit.
                for value in split_rows(b"{", {"i": env["i"], "c": env["c"]}):
                    futures.append(await interactions.send(key=key.encode(), value=value))
            for dead in batch.dead_letters:
                log.warning("dead letter from %s[%s] offset=%s: %s", dead["topic"], dead["partition"],
                            dead["offset"], dead["reason"])
                if len(dead["payload"]) > DLQ_PAYLOAD_MAX:  # the archive keeps it whole
                    dead = {**dead, "payload": dead["payload"][:DLQ_PAYLOAD_MAX], "truncated": True}
                futures.append(await dlq.send(key=dead["platform"].encode(), value=orjson.dumps(dead)))
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
