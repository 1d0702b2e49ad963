"""Agent ``store_interactions``: ``interactions`` envelopes -> ClickHouse -> detection, then ack.

For each batch: insert interactions and changes, and hand the batch to detection
(:mod:`streams.agents.detect`), which applies it to the accounts' states while the insert
runs, then writes the changed detection rows and rollups and publishes the updates.
Offsets are committed only after all of that (:mod:`streams.agents.commit`); an
exception isolates the envelope that raises, a stop leaves the batch uncommitted.
Inserts are idempotent (ReplacingMergeTree keyed by natural ids, deterministic version),
so a redelivered batch changes nothing visible. Envelopes of either version
are read (:mod:`streams.contracts.envelopes`: a rolling upgrade meets both); one that
cannot be decoded is one dead letter with the reason. An envelope
the store refuses as bad data is dead-lettered alone (the batch is retried envelope by
envelope), never dropped silently; detection then rebuilds its states from the store.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

import faust

from streams.agents.commit import run_batches
from streams.agents.context import WorkerContext, durably, now_ms
from streams.agents.detect import Detection
from streams.agents.envelopes import bounded_dead_letter
from streams.contracts.archive import OUTCOME_DEAD, SINK_SOURCE, ArchiveRow, dead_letter_record
from streams.contracts.envelopes import Envelope, decode_envelope
from streams.contracts.tables import CHANGES, INTERACTIONS, RAW_EVENTS
from streams.contracts.topics import DLQ
from streams.contracts.topics import INTERACTIONS as INTERACTIONS_TOPIC
from streams.limits import record_budget
from streams.store.errors import is_data_error
from streams.store.writer import TableWriter

log = logging.getLogger(__name__)
STAGE = "sink"


def sink_dead_letter_key(text: str) -> str:
    """The archive key of a sink dead letter: its content, never its offset.

    The embedded broker's offsets restart at 0, so a ``topic:partition:offset`` key made
    each restart overwrite older dead letters; the same envelope delivered again is the
    same dead letter. Migration 0011 computes the same key in SQL for stored ones.
    """
    return f"{SINK_SOURCE}:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def register(app: faust.App, ctx: WorkerContext, detection: Detection | None = None) -> None:
    settings = ctx.settings
    source = app.topic(settings.topic(INTERACTIONS_TOPIC))
    dlq = app.topic(settings.topic(DLQ))
    client = ctx.store()
    inter = TableWriter.for_spec(client, INTERACTIONS, settings.batch_size)
    changes = TableWriter.for_spec(client, CHANGES, settings.batch_size)
    dead_archive = TableWriter.for_spec(client, RAW_EVENTS, settings.batch_size)
    dropped_seen: set[tuple[str, ...]] = set()

    def write(envs: list[Envelope]) -> None:
        rows_i = [row for env in envs for row in env.interactions]
        rows_c = [row for env in envs for row in env.changes]
        if rows_i:
            inter.write(rows_i)
        if rows_c:
            changes.write(rows_c)

    async def dead_letter(msg: Any, reason: str) -> None:
        text = (msg.value or b"").decode("utf-8", errors="replace")
        log.error("dead letter from %s[%s] offset=%s: %s", msg.topic, msg.partition, msg.offset, reason)
        record = dead_letter_record(reason, "", msg.topic, msg.partition, msg.offset, now_ms(), text)
        key = sink_dead_letter_key(text)
        row = ArchiveRow("", key, text, SINK_SOURCE, now_ms(), now_ms(), msg.topic, msg.partition, msg.offset,
                         OUTCOME_DEAD, reason, 0, "")
        await durably(lambda: dead_archive.write([row]), "archiving a dead letter", ctx.backoff(STAGE))
        await (await dlq.send(key=SINK_SOURCE.encode(), value=bounded_dead_letter(record, record_budget(settings))))

    async def handle(events: Sequence[Any]) -> None:
        """One batch: insert, detect, write and publish the detection results.

        Worked through in parts of at most ``sink_batch_events`` events (an envelope is never
        split: one larger than that is a part of its own): in a backlog each
        record holds hundreds of envelopes, so a batch of records can hold millions of events
        (a 10 M-event backfill met one of 2.5 M, and the detect worker passed 10 GB). A part is
        decoded only when its turn comes; the batch is acked after its last part, and a
        redelivery works every part again (every write is idempotent).
        """
        part: list[tuple[Any, Envelope]] = []
        size = 0
        rows = parts = 0
        for event in events:
            msg = event.message
            env = decode_envelope(msg.value or b"")
            if isinstance(env, str):
                await dead_letter(msg, env)
                continue
            if env.dropped and env.dropped not in dropped_seen:
                dropped_seen.add(env.dropped)
                log.warning("envelopes from %s[%s] carry columns this worker does not write, stored without "
                            "them: %s (a newer writer: upgrade this worker)", msg.topic, msg.partition,
                            ", ".join(env.dropped))
            if part and size + len(env) > settings.sink_batch_events:  # one envelope alone may exceed it
                await handle_part(part)
                rows, parts, part, size = rows + size, parts + 1, [], 0
            part.append((msg, env))
            size += len(env)
        if part or not parts:
            await handle_part(part)
            rows += size
        for event in events:
            msg = event.message
            ctx.metrics.position(STAGE, msg.topic, msg.partition, msg.offset)
        ctx.metrics.add(STAGE, source.get_topic_name(), records_in=len(events), events_in=rows,
                        events_out=rows)

    async def handle_part(decoded: list[tuple[Any, Envelope]]) -> None:
        """Insert, detect and write one part of a batch (:func:`handle`)."""
        envs = [env for _, env in decoded]

        async def store() -> bool:
            """Insert the batch; ``False`` when some envelopes were refused and dead-lettered."""
            try:
                await durably(lambda: write(envs), "writing interactions", ctx.backoff(STAGE))
                return True
            except Exception as exc:  # noqa: BLE001 - only data errors come out of durably()
                log.warning("batch refused by the store (%s); retrying envelope by envelope", exc)
            for msg, env in decoded:
                try:
                    await durably(partial(write, [env]), "writing one envelope", ctx.backoff(STAGE))
                except Exception as one:  # noqa: BLE001
                    if not is_data_error(one):
                        raise
                    await dead_letter(msg, f"store refused the rows: {one}")
            return False

        if detection is None:
            await store()
        else:
            await detection.process(detection.decode(envs), store())

    async def dead_letter_event(event: Any, reason: str) -> None:
        await dead_letter(event.message, reason)
        ctx.metrics.position(STAGE, event.message.topic, event.message.partition, event.message.offset)
        ctx.metrics.add(STAGE, source.get_topic_name(), records_in=1, dead_lettered=1)

    @app.agent(source, name="store_interactions")
    async def store_interactions(stream: Any) -> None:  # faust.Stream: take_events is not in StreamT
        await run_batches(stream, 1000, settings.batch_delay_s, handle, dead_letter_event,
                          "store_interactions", ctx.backoff(STAGE))
