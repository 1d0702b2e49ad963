"""Children of the supervisor die with it, whatever way it dies.

``rapport up`` starts the broker and the store as child processes. Ctrl-C reaches the whole
process group, but a ``SIGKILL`` of the supervisor (or an OOM kill) does not, and an orphaned
store would keep its data path locked. On Linux the kernel can signal a child when its parent
dies (``prctl(PR_SET_PDEATHSIG)``); :func:`die_with_parent` asks for that and is safe as a
``subprocess.Popen(preexec_fn=...)``, so it also covers children that are not Python (Tansu).
A Python child can add :func:`orphaned` to its wait loop, which works everywhere.

Caveat: the kernel sends the signal when the *thread* that forked the child exits, so start
children from a thread that lives as long as the supervisor (the main thread).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1

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
