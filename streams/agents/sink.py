"""Agent ``store_interactions``: ``interactions`` envelopes -> ClickHouse -> detection, then ack.

For each batch: insert interactions and changes, and hand the batch to detection
(:mod:`streams.agents.detect`), which applies it to the accounts' states while the insert
runs, then writes the changed detection rows and rollups and publishes the updates.
Offsets are committed only after all of that (:mod:`streams.agents.commit`); an
exception isolates the envelope that raises, a stop leaves the batch uncommitted.
Inserts are idempotent (ReplacingMergeTree keyed by natural ids, deterministic version),
so a redelivered batch changes nothing visible. An envelope
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
import orjson

from streams.agents.commit import run_batches
from streams.agents.context import WorkerContext, durably, now_ms
from streams.agents.detect import Detection
from streams.agents.envelopes import bounded_dead_letter, envelope_problem
from streams.interaction import CHANGE_COLUMNS, INTERACTION_COLUMNS
from streams.limits import record_budget
from streams.normalize.records import ARCHIVE_COLUMNS
from streams.store.errors import is_data_error
from streams.store.writer import TableWriter
from streams.topics import DLQ, INTERACTIONS

log = logging.getLogger(__name__)
STAGE = "sink"


def sink_dead_letter_key(text: str) -> str:
    """The archive key of a sink dead letter: its content, never its offset.

    The embedded broker's offsets restart at 0, so a ``topic:partition:offset`` key made
    each restart overwrite older dead letters; the same envelope delivered again is the
    same dead letter. Migration 0011 computes the same key in SQL for stored ones.
    """
    return "sink:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def register(app: faust.App, ctx: WorkerContext, detection: Detection | None = None) -> None:
    settings = ctx.settings
    source = app.topic(settings.topic(INTERACTIONS))
    dlq = app.topic(settings.topic(DLQ))
    client = ctx.store()
    inter = TableWriter(client, "interactions", INTERACTION_COLUMNS,
                        ("created_at", "client_created_at", "ingested_at", "edited_at"), "created_at",
                        settings.batch_size)
    # changes and raw_events are partitioned by platform (migrations 0010, 0011): no month split.
    changes = TableWriter(client, "changes", CHANGE_COLUMNS, ("changed_at",), None, settings.batch_size)
    dead_archive = TableWriter(client, "raw_events", ARCHIVE_COLUMNS, ("received_at", "archived_at"),
                               None, settings.batch_size)

    def write(envs: list[dict[str, list[list[Any]]]]) -> None:
        rows_i = [row for env in envs for row in env.get("i", ())]
        rows_c = [row for env in envs for row in env.get("c", ())]
        if rows_i:
            inter.write(rows_i)
        if rows_c:
            changes.write(rows_c)

    async def dead_letter(msg: Any, reason: str) -> None:
        text = (msg.value or b"").decode("utf-8", errors="replace")
        log.error("dead letter from %s[%s] offset=%s: %s", msg.topic, msg.partition, msg.offset, reason)
        record = {"reason": reason, "platform": "", "topic": msg.topic, "partition": msg.partition,
                  "offset": msg.offset, "received_at": now_ms(), "payload": text}
        key = sink_dead_letter_key(text)
        row = ["", key, text, "sink", now_ms(), now_ms(), msg.topic, msg.partition, msg.offset,
               "dead", reason, 0, ""]
        await durably(lambda: dead_archive.write([row]), "archiving a dead letter", ctx.backoff(STAGE))
        await (await dlq.send(key=b"sink", value=bounded_dead_letter(record, record_budget(settings))))

    async def handle(events: Sequence[Any]) -> None:
        """One batch: insert, detect, write and publish the detection results."""
        decoded: list[tuple[Any, dict[str, list[list[Any]]]]] = []
        for event in events:
            msg = event.message
            try:
                env = orjson.loads(msg.value or b"")
            except ValueError as exc:
                await dead_letter(msg, f"undecodable interactions envelope: {exc}")
                continue
            problem = envelope_problem(env, INTERACTION_COLUMNS, CHANGE_COLUMNS)
            if problem is not None:
                await dead_letter(msg, f"interactions envelope refused: {problem}")
                continue
            decoded.append((msg, env))
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
        rows = sum(len(env.get("i", ())) + len(env.get("c", ())) for _, env in decoded)
        for event in events:
            msg = event.message
            ctx.metrics.position(STAGE, msg.topic, msg.partition, msg.offset)
        ctx.metrics.add(STAGE, source.get_topic_name(), records_in=len(events), events_in=rows,
                        events_out=rows)

    async def dead_letter_event(event: Any, reason: str) -> None:
        await dead_letter(event.message, reason)
        ctx.metrics.position(STAGE, event.message.topic, event.message.partition, event.message.offset)
        ctx.metrics.add(STAGE, source.get_topic_name(), records_in=1, dead_lettered=1)

    @app.agent(source, name="store_interactions")
    async def store_interactions(stream: Any) -> None:  # faust.Stream: take_events is not in StreamT
        await run_batches(stream, 1000, settings.batch_delay_s, handle, dead_letter_event,
                          "store_interactions", ctx.backoff(STAGE))
