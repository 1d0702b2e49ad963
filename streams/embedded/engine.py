"""One chDB engine on a data path, and the connection handles HTTP requests run on.

chDB hosts one ClickHouse engine per process, bound to one data path; any number of
connection handles may be open on it. Handles run queries in parallel (chDB releases the GIL)
but one handle must serve one statement at a time, and a handle keeps session state (``SET``,
``USE``). So every request borrows a handle for its duration: a ``session_id`` owns one of its
own, sessionless requests share a small pool. A request's URL settings are applied with one
``SET`` of what differs from the handle's last request, and settings the request no longer
names go back to their baseline, so nothing leaks from one request to the next.

We talk to ``chdb._chdb`` (the layer under ``chdb.connect()``) because the Python wrapper's
streaming result stops at the first zero-row chunk, which drops the header of an empty JSON
or CSVWithNames answer.

Time zone: the engine fixes its time zone from the process ``TZ`` when ``chdb`` is imported,
and the client sends naive datetimes as wall time in the server's zone. A store that followed
the user's local zone would shift every naive datetime by the UTC offset (measured: 4 h under
``TZ=America/New_York``), so the store process pins ``TZ=UTC`` before chDB loads.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from streams.embedded.ch_errors import (
    SESSION_IS_LOCKED,
    SESSION_NOT_FOUND,
    TOO_MANY_SIMULTANEOUS_QUERIES,
    UNKNOWN_SETTING,
    QueryError,
)
from streams.embedded.reader import ReaderCaps
from streams.embedded.sql_guard import Guard, file_setting, outward_names, refuse
from streams.errors import StackError

log = logging.getLogger(__name__)

_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "GMT"})
# Names the chDB Python layer treats as Python objects, not ClickHouse output formats.
_PYTHON_FORMATS = frozenset({"dataframe", "arrowtable", "datastore", "debug"})


def pin_utc() -> bool:
    """Pin this process to UTC before chDB loads; False when chDB was imported first."""
    if "chdb" in sys.modules:
        return False
    os.environ["TZ"] = "UTC"
    time.tzset()
    return True


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_name(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


@dataclass(frozen=True, slots=True)
class Stats:
    """What a statement read and wrote, for ``X-ClickHouse-Summary``."""

    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    result_bytes: int = 0

    def __add__(self, other: Stats) -> Stats:
        return Stats(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @classmethod
    def of(cls, result: Any) -> Stats:
        return cls(read_rows=result.storage_rows_read(), read_bytes=result.storage_bytes_read(),
                   written_rows=result.rows_written(), written_bytes=result.bytes_written(),
                   result_rows=result.rows_read(), result_bytes=result.bytes_read())


class Handle:
    """One chDB connection, used by one request at a time."""

    def __init__(self, conn: Any, baseline: dict[str, str], max_threads: int,
                 readonly: bool = False) -> None:
        self._conn = conn
        self.readonly = readonly  # a reader's handle: its settings are fixed when opened
        self._baseline = baseline
        self._max_threads = max_threads
        self._applied: dict[str, str | None] = {}  # URL settings in force; None: unknown
        self._current_db: str | None = None
        self.home_db = "default"  # where a request without ``database`` runs
        self.dirty = False  # a shared handle whose session state a statement changed
        self.lock = threading.Lock()
        self.last_used = time.monotonic()
        self.timeout = 60.0

    def prepare(self, database: str | None, settings: dict[str, str]) -> None:
        """Make the handle's database and settings those of the coming request."""
        if self.readonly:
            settings = {}  # opened with them (reader.py); chDB refuses SET under readonly=1
        wanted = {name: self._clamp(name, value) for name, value in settings.items()}
        changes = [f"{name} = {_quote(value)}" for name, value in wanted.items()
                   if self._applied.get(name) != value]
        for name in self._applied.keys() - wanted.keys():
            base = self._baseline.get(name)
            changes.append(f"{name} = {_quote(base)}" if base is not None else f"{name} = DEFAULT")
        if changes:
            try:
                self._run("SET " + ", ".join(changes))
            except QueryError:
                self._applied = dict.fromkeys(self._applied.keys() | wanted.keys())
                raise
            self._applied = dict(wanted)
        target = database or self.home_db
        if target != self._current_db:
            self._run(f"USE {_quote_name(target)}")
            self._current_db = target

    def _clamp(self, name: str, value: str) -> str:
        if not _SETTING_NAME.match(name):
            raise QueryError.make(UNKNOWN_SETTING, "UNKNOWN_SETTING", f"Unknown setting '{name}'")
        if file_setting(name):  # a file the engine would read or write, or another parser
            raise refuse(f"The setting {name}")
        if name == "max_threads":  # the store's cap holds whatever a client asks
            wanted = int(value) if value.isdigit() else 0
            return str(min(wanted, self._max_threads) or self._max_threads)
        return value

    def after_session_statement(self, keyword: str, shared: bool) -> None:
        """Bookkeeping after SET or USE: a shared handle is retired, a session keeps them."""
        if keyword not in ("SET", "USE"):
            return
        if shared:
            self.dirty = True
        elif keyword == "USE":
            db = self._run("SELECT currentDatabase()", "TabSeparated").bytes().decode().strip()
            self.home_db = self._current_db = db
        else:
            self._applied = {}  # the session now owns what it set; do not reset it

    def text(self, sql: str, params: dict[str, str], fmt: str) -> str:
        """A statement's whole answer as text (the guard's parse requests)."""
        return bytes(self.query(sql, fmt, params).bytes()).decode("utf-8", "replace")

    def _run(self, sql: str, fmt: str = "TabSeparated") -> Any:
        try:
            return self._conn.query(sql, fmt)
        except RuntimeError as exc:
            raise QueryError.from_chdb(exc) from None

    def query(self, sql: str, fmt: str, params: dict[str, str]) -> Any:
        """Run a statement; the chDB result holds the whole answer."""
        _check_format(fmt)
        try:
            return self._conn.query(sql, fmt, params=params)
        except RuntimeError as exc:
            raise QueryError.from_chdb(exc) from None

    def stream(self, sql: str, fmt: str, params: dict[str, str]) -> Generator[Any, None, None]:
        """Run a SELECT and yield its answer in chunks (chDB results with ``get_memview``).

        Errors found while planning surface at the first ``next()``, before any byte is sent.
        """
        _check_format(fmt)
        try:
            stream = self._conn.send_query(sql, fmt, params=params)
        except RuntimeError as exc:
            raise QueryError.from_chdb(exc) from None
        finished = False
        try:
            while True:
                try:
                    chunk = self._conn.streaming_fetch_result(stream)
                except RuntimeError as exc:
                    finished = True  # chDB ends a failed stream itself
                    raise QueryError.from_chdb(exc) from None
                if chunk is None or (chunk.size() == 0 and chunk.rows_read() == 0):
                    finished = True
                    return
                yield chunk
        finally:
            if not finished:
                with suppress(RuntimeError):
                    self._conn.streaming_cancel_query(stream)

    def insert(self, sql: str, fmt: str, chunks: Iterable[bytes]) -> Stats:
        """Stream ``chunks`` of ``fmt`` data into ``INSERT`` statement ``sql``."""
        try:
            inserter = self._conn.send_insert(sql, fmt)
        except RuntimeError as exc:
            raise QueryError.from_chdb(exc) from None
        try:
            for chunk in chunks:
                self._conn.insert_append(inserter, chunk)
            result = self._conn.insert_done(inserter)
        except BaseException as exc:
            try:
                self._conn.insert_cancel(inserter)
            except RuntimeError:
                self.dirty = True  # a handle stuck in an insert refuses every query
            if isinstance(exc, RuntimeError):
                raise QueryError.from_chdb(exc) from None
            raise
        return Stats(written_rows=result.rows_written(), written_bytes=result.bytes_written())

    def close(self) -> None:
        with suppress(RuntimeError):
            self._conn.close()


def _check_format(fmt: str) -> None:
    if fmt.lower() in _PYTHON_FORMATS:
        raise QueryError.make(73, "UNKNOWN_FORMAT", f"Unknown output format {fmt}")


class Engine:
    """The chDB engine of one data path, its shared handles and its sessions."""

    def __init__(self, data_path: Path, *, max_threads: int = 2, workers: int = 8,
                 max_sessions: int = 256, wait_s: float = 300.0, reserved_for_pipeline: int = 2,
                 reader_caps: ReaderCaps | None = None, reader_handles: int = 16) -> None:
        self.data_path = data_path.resolve()
        if "?" in str(self.data_path):
            raise StackError(f"the store data path may not contain '?': {self.data_path}")
        self.max_threads = max_threads
        self.workers = workers
        self.max_sessions = max_sessions
        self.wait_s = wait_s
        self.timezone = "UTC"
        self._slots = threading.BoundedSemaphore(workers)  # chDB statements at once
        # Readers (boards, Grafana) never hold the last slots: the pipeline always gets in.
        self.reader_workers = max(1, workers - reserved_for_pipeline)
        self._reader_slots = threading.BoundedSemaphore(self.reader_workers)
        self.reader_caps = reader_caps or ReaderCaps(max_threads=max_threads)
        self._reader_free: OrderedDict[tuple[tuple[str, str], ...], list[Handle]] = OrderedDict()
        self._reader_handles = reader_handles
        self._mutex = threading.Lock()
        self._free: list[Handle] = []
        self._sessions: dict[str, Handle] = {}
        self._baseline = {"max_threads": str(max_threads)}
        self._keeper: Handle | None = None  # never lent out: keeps the engine up
        self.guard = Guard(outward_names([], [], []))  # completed from the engine by open()
        self._closing = False

    def open(self) -> None:
        """Load chDB (pinned to UTC) and open the engine on the data path."""
        pinned = pin_utc()
        from chdb import _chdb  # must come after pin_utc()

        self._chdb: Any = _chdb  # the pybind module has no type information
        self.data_path.mkdir(parents=True, exist_ok=True)
        keeper = self._new_handle()
        zone = keeper._run("SELECT serverTimezone()").bytes().decode().strip()
        if zone not in _UTC_NAMES:
            # chDB was loaded before us under another TZ: pin each session instead.
            log.warning("chDB was loaded with time zone %s (pinned before load: %s); "
                        "pinning every store session to UTC", zone, pinned)
            self._baseline["session_timezone"] = "UTC"
            keeper.close()
            keeper = self._new_handle()
        self.timezone = keeper._run("SELECT timezone()").bytes().decode().strip()
        names = [keeper._run(f"SELECT name FROM system.{table}").bytes().decode().split()
                 for table in ("table_functions", "table_engines", "database_engines")]
        self.guard = Guard(outward_names(*names))
        self._keeper = keeper

    def _new_handle(self, reader: tuple[tuple[str, str], ...] | None = None) -> Handle:
        options = "&".join(f"{k}={v}" for k, v in {**self._baseline, **dict(reader or ())}.items())
        try:
            conn = self._chdb.connect(f"{self.data_path}?{options}")
        except RuntimeError as exc:
            if reader is not None:  # a reader's setting chDB does not take
                raise QueryError.from_chdb(exc) from None
            raise StackError(f"cannot open chDB on {self.data_path}: {exc}") from None
        return Handle(conn, self._baseline, self.max_threads, readonly=reader is not None)

    @contextmanager
    def reader_handle(self, settings: tuple[tuple[str, str], ...]) -> Iterator[Handle]:
        """Borrow a read-only handle opened with ``settings`` (``reader.reader_settings``)."""
        if self._closing or not self._reader_slots.acquire(timeout=self.wait_s):
            raise QueryError.make(TOO_MANY_SIMULTANEOUS_QUERIES, "TOO_MANY_SIMULTANEOUS_QUERIES",
                                  "The store is busy with read-only queries or stopping")
        try:
            if not self._slots.acquire(timeout=self.wait_s):
                raise QueryError.make(TOO_MANY_SIMULTANEOUS_QUERIES,
                                      "TOO_MANY_SIMULTANEOUS_QUERIES", "The store is busy")
            try:
                with self._mutex:
                    free = self._reader_free.get(settings)
                    handle = free.pop() if free else None
                if handle is None:
                    handle = self._new_handle(settings)
                try:
                    yield handle
                finally:
                    self._give_back_reader(settings, handle)
            finally:
                self._slots.release()
        finally:
            self._reader_slots.release()

    def _give_back_reader(self, key: tuple[tuple[str, str], ...], handle: Handle) -> None:
        if handle.dirty:
            handle.close()
            return
        retired = []
        with self._mutex:
            self._reader_free.setdefault(key, []).append(handle)
            self._reader_free.move_to_end(key)
            while sum(len(v) for v in self._reader_free.values()) > self._reader_handles:
                oldest = next(iter(self._reader_free))
                retired.extend(self._reader_free.pop(oldest))
        for old in retired:
            old.close()

    @contextmanager
    def handle(self, session_id: str | None = None, *, session_timeout: float = 60.0,
               session_check: bool = False, close_session: bool = False) -> Iterator[Handle]:
        """Borrow a handle: the session's own, or a shared one, for one statement."""
        if self._closing or not self._slots.acquire(timeout=self.wait_s):
            raise QueryError.make(TOO_MANY_SIMULTANEOUS_QUERIES, "TOO_MANY_SIMULTANEOUS_QUERIES",
                                  "The store is busy or stopping")
        try:
            if session_id is None:
                handle = self._take_shared()
                try:
                    yield handle
                finally:
                    self._give_back(handle)
            else:
                handle = self._session(session_id, session_timeout, session_check)
                if not handle.lock.acquire(timeout=5.0):
                    raise QueryError.make(SESSION_IS_LOCKED, "SESSION_IS_LOCKED",
                                          f"Session {session_id} is locked by a concurrent client")
                try:
                    yield handle
                finally:
                    handle.last_used = time.monotonic()
                    handle.lock.release()
                    if close_session:
                        self._drop_session(session_id)
        finally:
            self._slots.release()

    def _take_shared(self) -> Handle:
        with self._mutex:
            if self._free:
                return self._free.pop()
        return self._new_handle()

    def _give_back(self, handle: Handle) -> None:
        if handle.dirty:
            handle.close()
            return
        with self._mutex:
            self._free.append(handle)

    def _session(self, session_id: str, timeout: float, check: bool) -> Handle:
        now = time.monotonic()
        with self._mutex:
            expired = [sid for sid, h in self._sessions.items()
                       if now - h.last_used > h.timeout and not h.lock.locked()]
            retired = [self._sessions.pop(sid) for sid in expired]
            handle = self._sessions.get(session_id)
            if handle is None and check:
                raise QueryError.make(SESSION_NOT_FOUND, "SESSION_NOT_FOUND",
                                      f"Session {session_id} not found")
            if handle is None and len(self._sessions) >= self.max_sessions:
                idle = [h for h in self._sessions.values() if not h.lock.locked()]
                if idle:  # the least recently used session makes room
                    oldest = min(idle, key=lambda h: h.last_used)
                    retired.append(self._sessions.pop(
                        next(s for s, h in self._sessions.items() if h is oldest)))
        for old in retired:
            old.close()
        if handle is None:
            fresh = self._new_handle()
            with self._mutex:
                handle = self._sessions.setdefault(session_id, fresh)
            if handle is not fresh:  # another request opened this session meanwhile
                fresh.close()
        handle.timeout = timeout
        return handle

    def _drop_session(self, session_id: str) -> None:
        with self._mutex:
            handle = self._sessions.pop(session_id, None)
        if handle is not None:
            handle.close()

    def close(self, timeout_s: float = 30.0) -> None:
        """Wait for running statements (up to ``timeout_s``), then close every handle."""
        self._closing = True
        deadline = time.monotonic() + timeout_s
        taken = 0
        for _ in range(self.workers):
            if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                log.warning("store closing with statements still running")
                break
            taken += 1
        with self._mutex:
            # A statement still running after the wait keeps its handle: closing it under
            # the engine would crash the process.
            busy = taken < self.workers
            handles = self._free + [h for h in self._sessions.values()
                                    if not (busy and h.lock.locked())]
            handles += [h for free in self._reader_free.values() for h in free]
            self._free, self._sessions = [], {}
            self._reader_free = OrderedDict()
        if self._keeper is not None:
            handles.append(self._keeper)
            self._keeper = None
        for handle in handles:
            handle.close()
        for _ in range(taken):
            self._slots.release()
