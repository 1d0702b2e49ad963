"""Detection wiring: called by the sink's batch loop, plus a deadline timer and rebalance hooks.

Detection runs *inside* ``store_interactions`` rather than as a second agent on the same
topic, so one ack covers both: a batch is acked only after its interactions, the
detection rows they changed and the per-minute rollups are in the store and the updates
are on ``rapport.threads``/``conversations``/``alerts``. State is then a function of the
stored interactions and is rebuilt from the store, never from a changelog (docs/
architecture.md "Detection"). The pure parts live in :mod:`streams.detect` and
:mod:`streams.detect_io`; this module only schedules them.

The timer and the agent share the in-memory states (plain dicts, not faust Tables, which a
timer may not modify); an ``asyncio.Lock`` keeps a sweep from interleaving with a batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from functools import partial
from typing import Any, cast

import faust
import orjson

from streams.agents.context import WorkerContext, durably, now_ms
from streams.agents.envelopes import split_rows
from streams.contracts.envelopes import Envelope
from streams.contracts.topics import INTERACTIONS, THREADS
from streams.detect_io.engine import Batch, Detector, Output, Prepared
from streams.detect_io.open_items import refresh_open_items, touched_keys
from streams.detect_io.queries import DetectStore
from streams.detect_io.rebuilds import Rebuilds
from streams.detect_io.tables import PUBLISHED, TABLES
from streams.limits import record_budget
from streams.store.writer import TableWriter

log = logging.getLogger(__name__)
STAGE = "detect"


def horizon_ms(ctx: WorkerContext) -> int:
    """The eviction horizon: the setting, but never shorter than the longest SLA."""
    longest = max(c.sla_minutes for c in ctx.clients.clients) * 60.0
    horizon = ctx.settings.state_horizon_s
    if horizon < longest:
        log.warning("RAPPORT_STATE_HORIZON_S=%.0f is shorter than the longest SLA (%.0f s): using %.0f s",
                    horizon, longest, longest)
        horizon = longest
    return int(horizon * 1000)


class Detection:
    """The detection side of one worker: states, writers, output topics, lock."""

    def __init__(self, app: faust.App, ctx: WorkerContext) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.lock = asyncio.Lock()
        self.store = DetectStore(ctx.store())
        self.probe = DetectStore(ctx.store())  # used outside the lock, before the sink inserts
        self.rebuild_store = DetectStore(ctx.store())  # rebuilds read outside the lock too
        self.open_items_store = DetectStore(ctx.store())  # beside the rollup, after each write
        self.open_items_lock = asyncio.Lock()  # refreshes in the order of their steps
        self.open_items_tasks: set[asyncio.Task[None]] = set()
        self.detector = Detector(ctx.clients, self.store, live_window_ms=int(settings.live_window_s * 1000),
                                 horizon_ms=horizon_ms(ctx), max_evicted=settings.evicted_ids_max,
                                 rebuild_page=settings.rebuild_page,
                                 max_person_convs=settings.person_conversations_max)
        self.rebuilds = Rebuilds(self._rebuild)
        # One client per table: the inserts of a batch run side by side.
        self.writers = {spec.name: TableWriter.for_spec(ctx.store(), spec.store_table, settings.batch_size)
                        for spec in TABLES}
        self.topics = {spec.topic: app.topic(settings.topic(spec.topic)) for spec in PUBLISHED if spec.topic}
        self.interactions_topic = settings.topic(INTERACTIONS)
        self.next_evict = time.monotonic() + settings.evict_interval_s

    def decode(self, envelopes: list[Envelope]) -> Batch:
        return Batch.of(envelopes)

    async def process(self, batch: Batch, stored: Awaitable[bool]) -> None:
        """Detect over a batch while the sink stores it (``stored``); return once all is written.

        The minutes the batch's events already occupy are read before the insert starts
        (the per-minute rollups of superseded rows change too). The states' update runs
        while the insert is in flight: it needs nothing from it (a rebuild that misses the
        batch is completed by applying it). Results are written after the insert, and
        nothing is acked before they are.
        """
        ids = batch.event_ids()
        if ids:
            batch.prior_minutes = await durably(partial(self.probe.minutes_of, ids),
                                                "reading the minutes of known events", self.ctx.backoff(STAGE))
        if not batch.by_key and not batch.unattributed:
            await stored
            return
        # Accounts of this batch not loaded yet are rebuilt first, outside the lock: the
        # timer keeps sweeping the loaded accounts meanwhile (streams/detect_io/rebuilds.py).
        await self.rebuilds.wait(self.detector.to_load(batch.by_key))
        async with self.lock:
            compute = asyncio.ensure_future(self._compute(batch))
            try:
                complete = await stored
            except BaseException:
                await asyncio.gather(compute, return_exceptions=True)
                self.reset("storing a batch failed")
                raise
            out = await compute
            if not complete:
                # Some rows were refused (dead-lettered) but are applied in memory.
                self.reset("the store refused part of a batch")
                return
            try:
                await self._write(out)
            except BaseException:
                self.reset("writing detection results failed")
                raise
        self.ctx.metrics.add(STAGE, self.interactions_topic, events_in=batch.events, events_out=len(out.collector))

    async def sweep(self) -> None:
        """Timer body: start rebuilding newly owned accounts (not waiting for them), install
        those rebuilt, pass deadlines at the clock, evict idle threads."""
        self.rebuilds.start(self.detector.to_load(self.detector.pending))
        async with self.lock:
            out = await self._compute(None)
            if out:
                try:
                    await self._write(out, wait_open_items=False)
                except BaseException:
                    self.reset("writing detection results failed")
                    raise
            if time.monotonic() >= self.next_evict:
                self.next_evict = time.monotonic() + self.ctx.settings.evict_interval_s
                evicted = await asyncio.to_thread(self.detector.evict, now_ms())
                if evicted:
                    self.ctx.metrics.add("evict", self.ctx.settings.topic(THREADS), events_out=evicted)

    async def _compute(self, batch: Batch | None) -> Output:
        """Store reads (retried), then the states' update; on failure every state is rebuilt."""
        det = self.detector
        clock = now_ms()
        if batch is None and not (det.pending & det.ready.keys()):
            prepared = Prepared()
        else:
            prepared = await durably(partial(det.prepare, batch, clock, load_missing=batch is not None),
                                     "reading detection state", self.ctx.backoff(STAGE))
        try:
            out = await asyncio.to_thread(det.commit, prepared, batch, clock)
        except BaseException:
            self.reset("detection failed")  # memory may be half-way through the batch
            raise
        if out.restored_threads:
            self.ctx.metrics.add("restore", self.ctx.settings.topic(THREADS), events_out=out.restored_threads)
        return out

    async def _rebuild(self, key: str) -> None:
        """Rebuild one account from the store without the lock; kept unless a drop came first."""
        det = self.detector
        if not det.to_load([key]):
            return
        generation = det.generation
        loaded = await durably(partial(det.load, key, now_ms(), self.rebuild_store), f"rebuilding {key}",
                               self.ctx.backoff(STAGE))
        if det.generation == generation and key not in det.accounts:
            det.ready[key] = loaded

    async def _write(self, out: Output, wait_open_items: bool = True) -> None:
        """Tables (side by side), then the rollup and open items that read them; the topics meanwhile."""
        await asyncio.gather(self._store(out, wait_open_items), self._publish(out))

    async def _refresh_open_items(self, out: Output, keys: dict[tuple[str, str, str], set[str]]) -> None:
        """``open_items`` for the step's keys, after every earlier step's (one at a time, in order)."""
        async with self.open_items_lock:
            await durably(partial(refresh_open_items, self.open_items_store, out.version, out.rollup_accounts, keys,
                                  out.message_ids), "recomputing open_items", self.ctx.backoff(STAGE))

    def _refresh_open_items_later(self, out: Output, keys: dict[tuple[str, str, str], set[str]]) -> None:
        """A sweep's refresh, not waited for: the next sweep's alerts do not wait for it.

        Exact all the same: refreshes run in the order of their steps, each from the ``FINAL``
        state after its step's tables, and a later step that changes a key refreshes it again;
        one that never ran (a stop, an error it could not retry) is made good by the rebuild of
        the account, which refreshes it whole (after a restart, a rebalance, or the reset here).
        """
        async def run() -> None:
            try:
                await self._refresh_open_items(out, keys)
            except Exception:  # noqa: BLE001 - the accounts are rebuilt, which refreshes them
                log.exception("recomputing open_items after a sweep failed")
                async with self.lock:
                    self.reset("recomputing open_items failed")

        task = asyncio.ensure_future(run())
        self.open_items_tasks.add(task)
        task.add_done_callback(self.open_items_tasks.discard)

    async def _store(self, out: Output, wait_open_items: bool = True) -> None:
        rows = out.collector.store_rows(out.version)
        await asyncio.gather(*(durably(partial(self.writers[table].write, table_rows), f"writing {table}",
                                       self.ctx.backoff(STAGE))
                               for table, table_rows in rows.items()))
        # Both read the tables just written and write tables of their own: side by side, each on
        # its own client. A batch is acked after both; a sweep does not wait for the open items.
        derived: list[Awaitable[Any]] = []
        if out.rollup_scope:
            derived.append(durably(partial(self.store.recompute_rollup, out.version, out.rollup_accounts,
                                           out.rollup_minutes), "recomputing activity_minutely",
                                   self.ctx.backoff(STAGE)))
        open_keys = touched_keys(out.collector.rows)
        if out.rollup_accounts or open_keys or out.message_ids:
            if wait_open_items:
                derived.append(self._refresh_open_items(out, open_keys))
            else:
                self._refresh_open_items_later(out, open_keys)
        await asyncio.gather(*derived)

    async def _publish(self, out: Output) -> None:
        futures = []
        for topic_name, records in out.topic_records().items():
            topic = self.topics[topic_name]
            for key, value in records:
                # Many rows of one account: split under the producer's record limit.
                head = orjson.dumps({k: v for k, v in value.items() if k != "rows"})[:-1] + b","
                for chunk in split_rows(head, {"rows": value["rows"]}, budget=record_budget(self.ctx.settings)):
                    futures.append(await topic.send(key=key.encode(), value=chunk))
        for fut in futures:
            await fut

    def reset(self, why: str) -> None:
        keys = set(self.detector.accounts) | self.detector.pending
        self.detector.drop()  # rebuilds still running are stale now: their results are dropped
        self.detector.pending |= keys & set(self.detector.tracked)
        log.warning("%s: dropped detection state of %d accounts; they are rebuilt from the store", why, len(keys))

    async def on_revoked(self, revoked: set[Any]) -> None:
        if any(tp.topic == self.interactions_topic for tp in revoked):
            async with self.lock:
                n = self.detector.drop()
            log.info("partitions revoked: dropped the detection state of %d accounts", n)

    async def on_assigned(self, app: faust.App, assigned: set[Any]) -> None:
        mine = {tp.partition for tp in assigned if tp.topic == self.interactions_topic}
        count = app.consumer.topic_partitions(self.interactions_topic) or self.ctx.settings.partitions
        async with self.lock:
            keys = self.detector.own(mine, count)
        log.info("partitions %s of %s assigned: %d tracked accounts to load", sorted(mine),
                 self.interactions_topic, len(keys))


def register(app: faust.App, ctx: WorkerContext) -> Detection:
    """Create the worker's detection, its deadline timer and rebalance hooks."""
    detection = Detection(app, ctx)

    @app.timer(interval=ctx.settings.sweep_interval_s, name="sweep_deadlines")
    async def sweep_deadlines() -> None:
        await detection.sweep()

    async def revoked(sender: Any, *args: Any, **_: Any) -> None:
        await detection.on_revoked(args[0])

    async def assigned(sender: Any, *args: Any, **_: Any) -> None:
        await detection.on_assigned(app, args[0])

    # mode's receiver type wants a ``signal`` keyword in the signature; these accept it in ``**_``.
    app.on_partitions_revoked.connect(cast(Any, revoked), weak=False)
    app.on_partitions_assigned.connect(cast(Any, assigned), weak=False)
    return detection
