"""Children of a Rapport command die with it, whatever way it dies; the command stops cleanly.

``rapport up`` (and every command that runs a stack of its own: ``replay --drain``,
``demo``, ``bench``) starts the broker, the store, workers and ingest agents as child
processes. Three mechanisms together make sure none of them outlives its starter:

- **PR_SET_PDEATHSIG**: on Linux the kernel signals a child when its parent dies
  (:func:`die_with_parent`, safe as ``subprocess.Popen(preexec_fn=...)``, so it also covers
  Tansu). Caveat: the kernel sends it when the *thread* that forked the child exits, so
  start children from a thread that lives as long as the starter (the main thread).
- **An orphan watchdog** in every Python child started with a ``RAPPORT_SUPERVISOR_PID``
  (:func:`watch_supervisor`): the death signal is only a SIGTERM, and a faust worker whose
  graceful shutdown waits on a store that died with the same parent would otherwise linger
  for ever. Once re-parented, the child asks itself to stop and, after a grace period,
  exits hard. That is safe: offsets are committed only after writes, so whatever the
  child had not finished is redelivered.
- **Signals become one clean stop** (:func:`stop_on_signals`): SIGTERM and SIGHUP (what
  ``timeout``, CI runners, ``kill`` and a closed terminal send) raise
  :class:`KeyboardInterrupt` in the main thread like Ctrl-C, so the ``finally`` blocks that
  stop the stack run; during the stop itself further signals are ignored
  (:func:`ignoring_signals`), so a second one cannot abandon children half-stopped, and
  while a child is started and recorded the interrupt waits (:func:`signals_deferred`),
  so no child is started without the stack knowing it.

Readiness: a child started with a ready pipe (``RAPPORT_READY_FD``) writes one line into it
once it is started (:func:`signal_ready`), so a starter can wait for what it reports.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
READY_LINE = b"ready\n"

# Loaded at import so the preexec_fn path, which runs between fork and exec, does little.
_LIBC: ctypes.CDLL | None = None
if sys.platform.startswith("linux"):
    try:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - a libc without dlopen(NULL)
        _LIBC = None


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux only).

    Returns whether the request was armed. Without arguments it fits ``preexec_fn``.
    """
    if _LIBC is None:
        return False
    return _LIBC.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def orphaned(parent_pid: int) -> bool:
    """Whether the process that was our parent (``parent_pid``) is gone: we were re-parented."""
    return os.getppid() != parent_pid


def watch_supervisor(supervisor_pid: int, grace_s: float = 10.0, poll_s: float = 0.5) -> threading.Thread:
    """Stop this process once ``supervisor_pid`` is no longer its parent.

    First a SIGTERM to ourselves (the process's own graceful stop), then, if it is still
    alive ``grace_s`` later, ``os._exit``. A daemon thread, so it never holds an exit up; it
    polls rather than waits on the event loop, which may be the thing that is stuck.
    """

    def watch() -> None:
        while not orphaned(supervisor_pid):
            time.sleep(poll_s)
        log.warning("the process that started this one (pid %d) is gone; stopping", supervisor_pid)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        log.error("still running %.0f s after its starter died; exiting now", grace_s)
        os._exit(70)

    thread = threading.Thread(target=watch, name="supervisor-watchdog", daemon=True)
    thread.start()
    return thread


_ready_said: set[int] = set()


def signal_ready(ready_fd: int | None) -> None:
    """Tell the starter we are started (no-op without a ready pipe, or when it is gone).

    Once per pipe: after the first call the descriptor is closed, and its number may
    already name another file, so a second call must not write to it.
    """
    if ready_fd is None or ready_fd in _ready_said:
        return
    _ready_said.add(ready_fd)
    try:
        os.write(ready_fd, READY_LINE)
    except OSError:  # the starter closed its end: nobody waits any more
        pass
    finally:
        with suppress(OSError):
            os.close(ready_fd)


class _Deferral:
    """Whether a stop signal must wait for the end of a critical section, and which came."""

    depth = 0
    pending: int | None = None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if _Deferral.depth:
        _Deferral.pending = signum  # raised when the critical section ends
        return
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextmanager
def signals_deferred() -> Iterator[None]:
    """A stop signal that arrives in this block interrupts right after it, not inside it.

    For "start a child and record it": interrupted between the two, the starter would stop
    what it knows of and lose the child it had just started (seen: a bench worker forked
    while SIGTERM arrived kept running after its stack had stopped).
    """
    _Deferral.depth += 1
    try:
        yield
    finally:
        _Deferral.depth -= 1
        if not _Deferral.depth and _Deferral.pending is not None:
            signum, _Deferral.pending = _Deferral.pending, None
            raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`KeyboardInterrupt` like SIGINT, for this block.

    Only the main thread can set handlers; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def ignoring_signals() -> Iterator[None]:
    """Ignore stop signals for this block (a stop in progress finishes what it began)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
