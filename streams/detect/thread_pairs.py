"""A thread's (thread, person) exchanges, kept on ``Thread.ext`` as compactly as they come.

Most threads hold one person: that exchange sits on ``Thread.ext`` as it is; a few more
sit in a tuple of up to ``_SMALL_PAIRS`` exchanges, which costs far less than a dict per
thread (the per-thread memory figure of tests/unit/detect/test_detect_account_state.py
and of ``rapport bench``); past that, a dict by person keeps the lookup constant.
:class:`~streams.detect.account_state.AccountState` owns ``Thread.ext`` and reaches it
only through these three functions.
"""

from __future__ import annotations

from streams.detect.conversations import Pair
from streams.detect.threads import Thread

_SMALL_PAIRS = 8  # a thread's exchanges sit in a tuple up to this many persons, then a dict


def pairs_of(thread: Thread) -> tuple[Pair, ...]:
    """The thread's (thread, person) exchanges, kept on ``thread.ext``."""
    ext = thread.ext
    if ext is None:
        return ()
    if isinstance(ext, Pair):
        return (ext,)
    if isinstance(ext, dict):
        return tuple(ext.values())
    assert isinstance(ext, tuple)
    return ext


def pair_in(thread: Thread, person: str, create: bool) -> Pair | None:
    """The thread's exchange with ``person``; a new, empty one when it has none and ``create``."""
    ext = thread.ext
    if isinstance(ext, dict):
        found = ext.get(person)
    elif isinstance(ext, Pair):
        found = ext if ext.person == person else None
    else:
        found = next((p for p in ext or () if p.person == person), None)
    if found is not None or not create:
        return found
    found = Pair(person)
    put_pair(thread, found)
    return found


def put_pair(thread: Thread, pair: Pair) -> None:
    """Set ``pair`` as the thread's exchange with ``pair.person`` (replacing any other)."""
    ext = thread.ext
    if isinstance(ext, dict):
        ext[pair.person] = pair
        return
    others = tuple(p for p in pairs_of(thread) if p.person != pair.person)
    if not others:
        thread.ext = pair
    elif len(others) < _SMALL_PAIRS:
        thread.ext = (*others, pair)
    else:
        thread.ext = {p.person: p for p in (*others, pair)}
