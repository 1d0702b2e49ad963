"""A write-ahead spool: what a push edge acknowledged, on disk until the archive has it.

A webhook delivery answered 200 is never sent again by Meta, and the embedded broker keeps
its topics in memory. So the receiver appends each delivery here and fsyncs before it
answers; the entry stays until the store's ``raw_events`` holds its archive key, and
whoever opens the spool after a crash (the agent at start, ``rapport up`` before it starts
the agents) publishes again what the archive lacks.

Layout: ``<data_dir>/spool/<edge>/`` holds numbered segment files ``<n>.seg`` and a
``lock`` file. One process owns a spool at a time (an exclusive ``flock`` on ``lock``,
released by the kernel when its owner dies, SIGKILL included). A segment is a sequence of
frames::

    >III (meta length, body length, CRC-32 of meta + body) | meta (JSON) | body (bytes)

A frame cut short or failing its CRC ends the segment: it was being written when the
process died, so it was never fsynced and never acknowledged; the tail is truncated. A
segment is deleted once every entry in it is confirmed archived. Entries awaiting
confirmation are held in memory (bodies included) so they can be published again without
re-reading the files; what that costs is bounded by how far archiving trails the edge.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

log = logging.getLogger("streams.ingest")

FRAME = struct.Struct(">III")
SUFFIX = ".seg"

ARCHIVED_KEYS_SQL = """
SELECT DISTINCT raw_key FROM raw_events
WHERE platform = {platform:String} AND raw_key IN {keys:Array(String)}
"""
"""Which of these archive keys ``raw_events`` holds (its sort key is ``(platform, raw_key)``)."""
KEYS_PER_QUERY = 80
"""clickhouse-connect sends a parameter over 4 KB as multipart form data, which the embedded
store does not serve (streams/embedded/store_http.py): 80 keys of 32 hex digits stay below."""


class SpoolBusy(OSError):
    """Another live process owns this spool."""


@dataclass(eq=False)
class Entry:
    """One acknowledged payload: enough to publish it again exactly as the first time."""

    platform: str
    body: bytes
    source: str
    via_account: str
    received_at: int  # epoch ms of its arrival at the edge
    key: str  # the archive key the normalizer will give it (raw_events.raw_key)
    segment: int = 0
    published_at: float | None = field(default=None, compare=False)  # monotonic, None: never this run

    def meta(self) -> bytes:
        return orjson.dumps({"p": self.platform, "s": self.source, "v": self.via_account,
                             "t": self.received_at, "k": self.key})


def encode(entry: Entry) -> bytes:
    meta = entry.meta()
    return FRAME.pack(len(meta), len(entry.body), zlib.crc32(meta + entry.body)) + meta + entry.body


def decode(data: bytes, segment: int = 0) -> tuple[list[Entry], int]:
    """The whole frames at the start of ``data`` and the length they span."""
    entries: list[Entry] = []
    at = 0
    while at + FRAME.size <= len(data):
        meta_len, body_len, crc = FRAME.unpack_from(data, at)
        end = at + FRAME.size + meta_len + body_len
        if end > len(data):
            break
        meta, body = data[at + FRAME.size: at + FRAME.size + meta_len], data[at + FRAME.size + meta_len: end]
        if zlib.crc32(meta + body) != crc:
            break
        try:
            m = orjson.loads(meta)
            entries.append(Entry(str(m["p"]), body, str(m["s"]), str(m["v"]), int(m["t"]), str(m["k"]), segment))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            break
        at = end
    return entries, at


class Spool:
    """The spool of one edge (see the module docstring). Not thread-safe: one event loop
    appends and confirms; only the fsync runs on a worker thread, under ``_fd_lock``."""

    def __init__(self, directory: Path, segment_bytes: int = 4 << 20) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.segments: dict[int, set[Entry]] = {}  # segment number -> entries not yet confirmed
        self._lock_fd: int | None = None
        self._fd: int | None = None  # the segment being appended to
        self._current: int | None = None
        self._current_size = 0
        self._fd_lock = threading.Lock()
        self._written = 0  # appends so far, and of those, how many are known fsynced
        self._synced = 0
        self._sync_task: asyncio.Task[None] | None = None
        self.truncated = 0  # bytes of torn frames cut at open

    # --- ownership and recovery ---
    def open(self, wait_s: float = 0.0) -> Spool:
        """Take the spool (waiting up to ``wait_s`` for a dying owner) and load its entries."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise SpoolBusy(f"{self.directory} is held by another process") from None
                time.sleep(0.1)
        self._lock_fd = fd
        self._load()
        return self

    def _load(self) -> None:
        for path in sorted(self.directory.glob(f"*{SUFFIX}"), key=lambda p: int(p.stem)):
            number = int(path.stem)
            data = path.read_bytes()
            entries, good = decode(data, number)
            if good < len(data):
                self.truncated += len(data) - good
                log.warning("spool %s: %d bytes of a frame never acknowledged cut from %s",
                            self.directory, len(data) - good, path.name)
                with open(path, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
            if entries:
                self.segments[number] = set(entries)
            else:
                path.unlink()
        self._current = max(self.segments, default=0)  # the next segment is numbered after the last

    def pending(self) -> list[Entry]:
        """Every entry not yet confirmed archived, oldest first."""
        return [e for n in sorted(self.segments) for e in sorted(self.segments[n], key=lambda e: e.received_at)]

    def __len__(self) -> int:
        return sum(len(s) for s in self.segments.values())

    # --- appending ---
    def append(self, platform: str, body: bytes, source: str, via_account: str, received_at: int,
               key: str) -> Entry:
        """Write one entry (not yet durable: await :meth:`sync` before acknowledging it)."""
        if self._fd is None or self._current_size >= self.segment_bytes:
            self._rotate()
        assert self._current is not None and self._fd is not None
        entry = Entry(platform, body, source, via_account, received_at, key, self._current)
        frame = encode(entry)
        view = memoryview(frame)
        while view:
            view = view[os.write(self._fd, view):]
        self._current_size += len(frame)
        self.segments.setdefault(self._current, set()).add(entry)
        self._written += 1
        return entry

    def _rotate(self) -> None:
        """Close the current segment (fsynced) and start the next one."""
        self._close_current()
        number = (self._current or 0) + 1
        fd = os.open(self.directory / f"{number}{SUFFIX}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's name is durable before anything in it is acknowledged
        finally:
            os.close(dir_fd)
        with self._fd_lock:
            self._fd, self._current, self._current_size = fd, number, 0

    def _close_current(self) -> None:
        with self._fd_lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        if fd is not None:
            self._synced = self._written

    def _fsync(self) -> None:
        with self._fd_lock:
            if self._fd is not None:
                os.fsync(self._fd)

    async def sync(self) -> None:
        """Return once every entry appended so far is on disk. Concurrent callers share
        fsyncs: each waits for the first fsync that started after its append."""
        target = self._written
        while self._synced < target:
            if self._sync_task is None or self._sync_task.done():
                self._sync_task = asyncio.create_task(self._sync_once())
            await asyncio.shield(self._sync_task)

    async def _sync_once(self) -> None:
        mark = self._written
        await asyncio.get_running_loop().run_in_executor(None, self._fsync)
        self._synced = max(self._synced, mark)

    # --- confirming ---
    def confirm(self, entries: Iterable[Entry]) -> int:
        """Forget entries now archived; delete the segments left empty. Returns how many."""
        count = 0
        for entry in entries:
            live = self.segments.get(entry.segment)
            if live is not None and entry in live:
                live.discard(entry)
                count += 1
        for number in [n for n, live in self.segments.items() if not live]:
            if number == self._current and self._fd is not None:
                self._close_current()
            del self.segments[number]
            (self.directory / f"{number}{SUFFIX}").unlink(missing_ok=True)
        return count

    def close(self) -> None:
        """Close files and give the spool up (entries stay on disk for the next owner)."""
        self._close_current()
        if self._current is not None and self._current not in self.segments:
            (self.directory / f"{self._current}{SUFFIX}").unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


def spool_dir(data_dir: Path, edge: str) -> Path:
    return Path(data_dir) / "spool" / edge


def spool_dirs(data_dir: Path) -> list[Path]:
    root = Path(data_dir) / "spool"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def by_platform(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for entry in entries:
        out.setdefault(entry.platform, []).append(entry)
    return out
