"""Cap glibc's malloc arenas in a long-running process (``RAPPORT_MALLOC_ARENA_MAX``).

glibc gives each thread that contends for the heap an arena of its own, up to eight per
core, and keeps the memory freed in each one for reuse by that arena: a worker's threads
(``asyncio.to_thread`` helpers, the store clients' inserts side by side, the Kafka
clients) each pile up a reserve of free memory that the others do not reuse, and the
process's RSS follows the sum of their highest points. `rapport bench --soak` measured it
(bench/README.md): with the default arenas the free memory held by malloc rose from about
20 to 33 MB over 30 days of event time, while the memory in use stayed near 28 MB.

``mallopt(M_ARENA_MAX)`` at start, before the threads exist, has the effect of the
``MALLOC_ARENA_MAX`` environment variable without needing it set by whoever starts the
process (compose, systemd, `rapport up`). An explicit ``MALLOC_ARENA_MAX`` wins. Not glibc
(musl, macOS): nothing to do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's <malloc.h>


def limit_malloc_arenas(arena_max: int) -> bool:
    """Cap the arenas at ``arena_max`` (0: leave glibc's default). True when applied."""
    if arena_max <= 0 or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_ARENA_MAX, arena_max))
    if not ok:
        log.debug("mallopt(M_ARENA_MAX, %d) refused", arena_max)
    return ok
