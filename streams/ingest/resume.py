"""An agent's resume points on disk: ``<data_dir>/cursors/<agent>.json``, one per stream.

Each value is a :class:`~streams.ingest.watermark.Watermark`'s safe position, so it only
ever names a point up to which everything the agent published is archived. The keeper
asks the archive (``raw_events``, by archive key) about what is pending every
``spool_confirm_s`` and writes the file when a position moved (temp file, fsync, rename:
a crash leaves the old file or the new one, and an old one only costs a re-fetch).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import orjson

from streams.ingest.agent import Status, describe
from streams.ingest.cursors import ArchiveCursors
from streams.ingest.watermark import Watermark

log = logging.getLogger("streams.ingest")


def resume_path(data_dir: Path, agent: str) -> Path:
    return Path(data_dir) / "cursors" / f"{agent}.json"


class ResumeBook:
    """The watermarks of one agent (one platform), loaded from and saved to its file."""

    def __init__(self, path: Path, platform: str) -> None:
        self.path = path
        self.platform = platform
        self.marks: dict[str, Watermark] = {}
        self.saved: dict[str, int] = {}
        try:
            loaded = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            loaded = {}
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("%s: unreadable, resuming from the archive instead: %s", path, exc)
            loaded = {}
        if isinstance(loaded, dict):
            self.saved = {str(k): v for k, v in loaded.items() if isinstance(v, int) and not isinstance(v, bool)}

    def mark(self, stream: str) -> Watermark:
        if stream not in self.marks:
            self.marks[stream] = Watermark(safe=self.saved.get(stream))
        return self.marks[stream]

    def known(self, stream: str) -> bool:
        """Whether a resume point of ``stream`` was ever written (else: a first run, or an upgrade)."""
        return self.mark(stream).safe is not None

    def save(self) -> bool:
        now = {k: m.safe for k, m in self.marks.items() if m.safe is not None}
        now = {**self.saved, **now}
        if now == self.saved:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(now, option=orjson.OPT_SORT_KEYS))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
        self.saved = now
        return True

    async def confirm_once(self, cursors: ArchiveCursors) -> None:
        for mark in self.marks.values():
            mark.confirm(await cursors.archived_keys(self.platform, mark.pending()))  # chunked inside
        await asyncio.to_thread(self.save)

    def pending(self) -> int:
        """Items published and not yet confirmed archived, over every stream."""
        return sum(len(mark.pending()) for mark in self.marks.values())

    async def settle(self, cursors: ArchiveCursors, name: str, timeout_s: float, interval_s: float) -> int:
        """On a clean stop, after the outbox is flushed: confirm until nothing is pending or
        ``timeout_s`` passes, and save. Without it, what the archive took in the last
        ``interval_s`` before a stop stays behind the saved resume point and is fetched again
        at the next start (harmless, the archive keeps it once, but a needless re-read and,
        for a fresh process that cannot tell it published them, a second publication).
        Returns what is still pending (fetched again next time: never a gap)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                await self.confirm_once(cursors)
            except Exception as exc:  # noqa: BLE001 - the saved point stays where it was
                log.warning("%s: resume points not advanced at stop (archive not reachable): %s", name, describe(exc))
                return self.pending()
            left = self.pending()
            if left == 0 or asyncio.get_running_loop().time() >= deadline:
                if left:
                    log.info("%s: %d published item(s) not confirmed archived at stop; the next start fetches "
                             "them again", name, left)
                return left
            await asyncio.sleep(min(interval_s, 0.2))

    async def keep(self, cursors: ArchiveCursors, status: Status, interval_s: float) -> None:
        """Background task: confirm and save, forever (a store outage only delays it)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.confirm_once(cursors)
            except Exception as exc:  # noqa: BLE001 - retried next period; the old point stays
                log.warning("%s: resume points not advanced (archive not reachable): %s", status.name, describe(exc))


def reached(mark: Watermark, position: int | None, kept: bool) -> bool:
    """Whether paging back (newest first) has reached what is safely behind: an item older
    than the watermark; without a watermark yet (a first run, an upgrade), the first item
    already kept (archived, or published by this process).

    Strictly older: positions are creation times (ms), and an item created in the very
    millisecond of the watermark may have appeared after the agent read up to it, so the
    items *at* the watermark are still read (the kept ones are skipped as usual)."""
    if mark.safe is not None:
        return position is not None and position < mark.safe
    return kept
