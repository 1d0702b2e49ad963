"""One store process per data path, and a clear error naming the process that holds it.

chDB refuses a second process on a data path, but the exception says only ``Code: 36 ...
Error initializing EmbeddedServer (BAD_ARGUMENTS)``; the reason (``Cannot lock file
<path>/status``) reaches stderr alone. So before chDB loads, the store takes a lock of its own,
``<path>/rapport-store.lock`` (``flock``, released by the kernel when the process dies, so a
crash leaves no stale lock), writes its PID and URL there, and checks chDB's own ``status``
file, which chDB keeps under an ``flock`` too and which holds ``PID: N``.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from streams.errors import StoreLockedError

LOCK_FILE = "rapport-store.lock"
CHDB_STATUS_FILE = "status"

_PID = re.compile(r"^PID:\s*(\d+)", re.MULTILINE)
_URL = re.compile(r"^URL:\s*(\S+)", re.MULTILINE)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _holder(data_path: Path, *, by_engine: bool = False) -> str:
    """Who holds the data path, as far as the lock and status files tell."""
    ours = "" if by_engine else _read(data_path / LOCK_FILE)  # else stale: we got that lock
    pid = _PID.search(ours) or _PID.search(_read(data_path / CHDB_STATUS_FILE))
    url = _URL.search(ours)
    who = f"process {pid.group(1)}" if pid else "another process"
    return f"{who} (serving {url.group(1)})" if url else who


def _engine_in_use(data_path: Path) -> bool:
    """Whether some process has chDB open on the data path (its ``status`` file is locked)."""
    try:
        fd = os.open(data_path / CHDB_STATUS_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops our probe lock
    return False


class DataPathLock:
    """An exclusive, crash-safe claim on a store data path."""

    def __init__(self, data_path: Path) -> None:
        self.data_path = data_path
        self.path = data_path / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Claim the data path or raise ``StoreLockedError`` naming the holder's PID."""
        self.data_path.mkdir(parents=True, exist_ok=True)
        # Not O_TRUNC: the holder's PID must survive our failed attempt.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self._locked() from None
        self._fd = fd
        if _engine_in_use(self.data_path):  # chDB opened there by a process not ours
            self.release()
            raise self._locked(by_engine=True)
        self.note()

    def _locked(self, *, by_engine: bool = False) -> StoreLockedError:
        holder = _holder(self.data_path, by_engine=by_engine)
        return StoreLockedError(
            f"the store data path {self.data_path} is in use by {holder}; "
            "stop that process or choose another data directory")

    def note(self, url: str | None = None) -> None:
        """Record our PID (and URL once bound) for whoever finds the path taken."""
        if self._fd is None:
            return
        text = f"PID: {os.getpid()}\n" + (f"URL: {url}\n" if url else "")
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # the file stays: unlinking a locked file races with a new owner

    @property
    def held(self) -> bool:
        return self._fd is not None
