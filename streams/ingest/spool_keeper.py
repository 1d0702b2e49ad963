"""Draining a write-ahead spool: drop what the archive confirms, publish again what it lacks.

The edge publishes each entry as soon as it is fsynced; this loop then asks the store,
every ``spool_confirm_s``, which pending entries ``raw_events`` holds, and forgets those
(:meth:`Spool.confirm` deletes emptied segments). An entry still not archived
``spool_republish_s`` after it was last published is published again: the broker may
have died with it. Entries loaded at start (never published by this run) are published at
once, unless ``rapport up`` already did (it replays spools before it starts the agents).
A store that does not answer only delays confirmation: entries are never dropped unconfirmed.

:func:`replay_spools` is the synchronous start-up replay ``rapport up`` runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from clickhouse_connect.driver.client import Client

from streams.ingest.agent import Outbox, Status, describe
from streams.ingest.cursors import ArchiveCursors
from streams.ingest.publisher import Publisher
from streams.ingest.spool import ARCHIVED_KEYS_SQL, KEYS_PER_QUERY, Entry, Spool, SpoolBusy, by_platform, spool_dirs
from streams.settings import Settings

log = logging.getLogger("streams.ingest")


def due(entries: Iterable[Entry], now: float, republish_s: float) -> list[Entry]:
    """Entries to publish (again): never published by this process, or longer ago than
    ``republish_s`` without being confirmed."""
    return [e for e in entries if e.published_at is None or now - e.published_at >= republish_s]


def archived_in(entries: list[Entry], lookup: Callable[[str, list[str]], set[str]]) -> list[Entry]:
    """The entries whose key ``lookup(platform, keys)`` reports archived."""
    found: list[Entry] = []
    for platform, group in by_platform(entries).items():
        for i in range(0, len(group), KEYS_PER_QUERY):
            chunk = group[i:i + KEYS_PER_QUERY]
            keys = lookup(platform, sorted({e.key for e in chunk}))
            found += [e for e in chunk if e.key in keys]
    return found


class SpoolKeeper:
    """The background task of an edge that spools (see the module docstring)."""

    def __init__(self, spool: Spool, outbox: Outbox, cursors: ArchiveCursors, settings: Settings,
                 status: Status) -> None:
        self.spool = spool
        self.outbox = outbox
        self.cursors = cursors
        self.settings = settings
        self.status = status
        self.confirmed = 0
        self.republished = 0

    async def run(self) -> None:
        while True:
            try:
                await self.pass_once()
            except Exception as exc:  # noqa: BLE001 - the store may be down: retry, never drop
                log.warning("%s: spool: archive not reachable, %d entries kept: %s",
                            self.status.name, len(self.spool), describe(exc))
            await asyncio.sleep(self.settings.spool_confirm_s)

    async def pass_once(self) -> None:
        pending = self.spool.pending()
        if not pending:
            return
        found: list[Entry] = []
        for platform, group in by_platform(pending).items():
            keys = await self.cursors.archived_keys(platform, [e.key for e in group])  # chunked inside
            found += [e for e in group if e.key in keys]
        self.confirmed += self.spool.confirm(found)
        now = time.monotonic()
        gone = set(found)
        again = due((e for e in pending if e not in gone), now, self.settings.spool_republish_s)
        for entry in again:
            if entry.published_at is not None:
                self.republished += 1
            entry.published_at = now
            await self.outbox.put(entry.platform, entry.body, entry.source, entry.via_account, entry.received_at)
        if again:
            log.info("%s: spool: published %d entries the archive does not hold yet (%d pending)",
                     self.status.name, len(again), len(self.spool))


def mark_published(spool: Spool) -> None:
    """Entries ``rapport up`` just replayed count as published now (not published twice)."""
    now = time.monotonic()
    for entry in spool.pending():
        entry.published_at = now


def replay_spools(data_dir: Path, client: Client, publisher: Publisher) -> int:
    """`rapport up`'s start-up replay: for each spool no live process holds, drop what is
    archived and publish the rest; returns how many entries were published."""
    published = 0

    def lookup(platform: str, keys: list[str]) -> set[str]:
        rows = client.query(ARCHIVED_KEYS_SQL, parameters={"platform": platform, "keys": keys}).result_rows
        return {r[0] for r in rows}

    for directory in spool_dirs(data_dir):
        try:
            spool = Spool(directory).open()
        except SpoolBusy:
            log.warning("spool %s is held by a running process; it replays it itself", directory)
            continue
        try:
            pending = spool.pending()
            spool.confirm(archived_in(pending, lookup))
            for entry in spool.pending():
                publisher.add(entry.platform, entry.body, entry.source, entry.received_at,
                              via_account=entry.via_account)
                published += 1
            publisher.flush()
        finally:
            spool.close()
    if published:
        log.info("re-published %d spooled payloads the archive did not hold", published)
    return published
