"""`rapport worker --agents all|normalize|detect`: one faust worker process of one role.

Agents: ``normalize_payloads`` (raw topics -> archive + interactions; role ``normalize``) and
``store_interactions`` (interactions -> store -> detection -> detection tables and output
topics; role ``detect``, with the ``sweep_deadlines`` timer: live SLA deadlines, loading owned
accounts, eviction); every role runs ``flush_pipeline_metrics``. Role ``all`` runs both in
one process, as one core.

Workers of one role form one consumer group (streams/contracts/groups.py), so each role
scales by itself (embedded: ``rapport up --workers N`` starts N of each; compose:
``--scale worker-normalize=N --scale worker-detect=M``).
"""

from __future__ import annotations

import gc
import logging
import os
import socket

from streams.clients import ClientsFile
from streams.contracts.groups import WorkerRole, consumer_group
from streams.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings, clients: ClientsFile, broker_url: str, store_url: str,
               role: WorkerRole = WorkerRole.all) -> None:
    """Run the faust worker of ``role`` in the foreground until SIGINT/SIGTERM."""
    from streams.malloc_arenas import limit_malloc_arenas

    limit_malloc_arenas(settings.malloc_arena_max)  # before the threads exist
    try:
        import mode.loop

        mode.loop.use("uvloop")  # before faust builds its loop: ~15 % more records/s here
    except Exception:  # noqa: BLE001 - uvloop is optional (not on Windows)
        pass
    import faust
    from faust.types import TP

    from streams.agents import detect, normalize, sink
    from streams.agents.context import WorkerContext, durably
    from streams.app import create_app
    from streams.contracts.tables import PIPELINE_METRICS
    from streams.embedded.lifecycle import signal_ready
    from streams.store.writer import TableWriter

    # Large decoded batches make the cyclic GC expensive (shared/notes/throughput.md);
    # raise the first threshold rather than switching the collector off.
    gc.set_threshold(100_000, 50, 100)
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    app = create_app(settings, broker_url, consumer_group(settings.app_id, role))
    ctx = WorkerContext(settings, clients, store_url, worker_id)
    if role in (WorkerRole.all, WorkerRole.normalize):
        normalize.register(app, ctx)
    if role in (WorkerRole.all, WorkerRole.detect):
        sink.register(app, ctx, detect.register(app, ctx))
    log.info("worker %s: agents %s, consumer group %s", worker_id, role.value, app.conf.id)
    metrics_writer = TableWriter.for_spec(ctx.store(), PIPELINE_METRICS, 10_000)

    def highwater(topic: str, partition: int) -> int | None:
        try:
            hw = app.consumer.highwater(TP(topic, partition))
        except Exception:  # noqa: BLE001 - not assigned or not fetched yet
            return None
        return int(hw) if hw is not None else None

    @app.timer(interval=5.0, name="flush_pipeline_metrics")
    async def flush_pipeline_metrics() -> None:
        rows = ctx.metrics.drain(highwater)
        if rows:
            await durably(lambda: metrics_writer.write(rows), "writing pipeline metrics",
                          ctx.backoff("metrics"))

    @app.task
    async def report_started() -> None:
        """Agents and timers run (faust starts app tasks once the app is up): say so."""
        signal_ready(settings.ready_fd)

    gc.freeze()
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
