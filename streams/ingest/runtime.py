"""Running one agent: its outbox, archive cursors and status around its own ``run()``.

:func:`run_agent` is what `rapport ingest <platform>` runs (and what the integration tests
run in-process): the agent, the outbox pump and the status reporter as three tasks. When
any of them ends (only a failure does) or the whole is cancelled (SIGTERM, Ctrl-C), the
others stop, the outbox is flushed to the broker, a pull agent's resume points are settled
(:meth:`ResumeBook.settle`: confirmed against the archive for a few seconds, so a clean stop
saves them past what it published) and the status file says ``stopped``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from streams.clients import ClientsFile
from streams.embedded.lifecycle import signal_ready
from streams.ingest.agent import Outbox, Status, report_status, status_path, write_status
from streams.ingest.cursors import ArchiveCursors
from streams.ingest.resume import ResumeBook
from streams.settings import Settings

log = logging.getLogger("streams.ingest")


@dataclass
class Context:
    """What an agent is given: configuration, the way out, the archive and its status."""

    settings: Settings
    clients: ClientsFile
    outbox: Outbox
    cursors: ArchiveCursors
    status: Status


class Agent(Protocol):
    name: str

    async def run(self) -> None: ...


def resume_book_of(agent: object) -> ResumeBook | None:
    """The agent's resume points, when it keeps any (the pull agents do; webhooks spool)."""
    book = getattr(agent, "book", None)
    return book if isinstance(book, ResumeBook) else None


async def run_agent(make: Callable[[Context], Agent], name: str, settings: Settings, clients: ClientsFile,
                    broker_url: str, store_url: str, notes: list[str] | None = None,
                    status: Status | None = None) -> None:
    """Run the agent ``make`` builds until cancelled; always flush what it published."""
    status = status or Status(name)
    status.notes = list(notes or [])
    for note in status.notes:
        log.warning("%s", note)
    path = status_path(settings.data_dir, name)
    outbox = await Outbox.open(settings, broker_url, status)
    cursors = ArchiveCursors(store_url, settings)
    agent = make(Context(settings, clients, outbox, cursors, status))
    tasks = [asyncio.create_task(agent.run(), name=f"{name}-agent"),
             asyncio.create_task(outbox.pump(), name=f"{name}-outbox"),
             asyncio.create_task(report_status(status, path, settings), name=f"{name}-status")]
    write_status(path, status)  # "starting": the file exists before anyone is told we started
    signal_ready(settings.ready_fd)  # started, not connected: the platform may not answer yet
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        status.state = "stopped"
        try:
            await outbox.close()
            book = resume_book_of(agent)
            if book is not None and book.pending():
                await book.settle(cursors, name, settings.ingest_stop_confirm_s, settings.spool_confirm_s)
        finally:
            await asyncio.to_thread(cursors.close)
            write_status(path, status)
            log.info("%s", status.line())
