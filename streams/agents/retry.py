"""Which errors are retried, and the backoff that makes every retry visible.

An error is *transient* when the same call can succeed later without any change to the
data: the store or the broker unreachable, slow, or pushing back. Those are retried with
exponential backoff until they pass or the worker stops; each step is logged with the
error's code and recorded as the stage's state (:class:`Backoff`), so a retry is never a
silent stall. Everything else is about the record in hand and is isolated by
:func:`streams.agents.commit.settle`. Store errors are classified by ClickHouse error
code in :mod:`streams.store.errors`, never by message text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from clickhouse_connect.driver.exceptions import Error as StoreError

from streams.store.errors import error_code, is_deterministic
from streams.store.writer import IncompleteInsert

log = logging.getLogger(__name__)

# Broker errors about the record itself: retrying the same bytes cannot succeed.
_RECORD_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError,
                  CorruptRecordException, InvalidMessageError)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (faust raises ``ProducerSendError`` from aiokafka's error)."""
    out: list[BaseException] = []
    while exc is not None and exc not in out and len(out) < 8:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return out


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same call unchanged can succeed (see the module docstring)."""
    for cause in _causes(exc):
        if isinstance(cause, StoreError):
            return not is_deterministic(cause)
        if isinstance(cause, IncompleteInsert):
            return True
        if isinstance(cause, _RECORD_ERRORS):
            return False
        if isinstance(cause, KafkaError | OSError | TimeoutError | asyncio.TimeoutError):
            return True
    return False


def describe(exc: BaseException) -> str:
    """One line naming the error: type, store code when known, first line of the message."""
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    code = error_code(exc)
    kind = type(exc).__name__ + (f" code {code}" if code is not None else "")
    return f"{kind}: {text}" if text else kind


@dataclass
class Backoff:
    """Exponential backoff of one stage, with its state visible to metrics and the board.

    ``on_state`` gets ``(stage, state, detail)`` on every change: ``"retrying"`` with the
    error at each step, ``"ok"`` when the call passed again.
    """

    stage: str
    on_state: Callable[[str, str, str], None] | None = None
    first_s: float = 0.2
    max_s: float = 10.0
    delay: float = field(default=0.0, init=False)
    attempts: int = field(default=0, init=False)
    since: float = field(default=0.0, init=False)

    async def wait(self, what: str, exc: BaseException) -> None:
        """Log this step (with the error code) and sleep before the next attempt."""
        if not self.attempts:
            self.since = time.monotonic()
        self.attempts += 1
        self.delay = self.first_s if self.delay == 0 else min(self.delay * 2, self.max_s)
        detail = describe(exc)
        log.warning("%s: %s failed (attempt %d, %.0fs so far; %s); retrying in %.1fs", self.stage, what,
                    self.attempts, time.monotonic() - self.since, detail, self.delay)
        if self.on_state is not None:
            self.on_state(self.stage, "retrying", f"{what}: {detail}")
        await asyncio.sleep(self.delay)

    def passed(self, what: str) -> None:
        """The call succeeded: reset, and say so when it had been retrying."""
        if self.attempts:
            log.warning("%s: %s succeeded after %d retries (%.1fs)", self.stage, what, self.attempts,
                        time.monotonic() - self.since)
            if self.on_state is not None:
                self.on_state(self.stage, "ok", "")
        self.attempts = 0
        self.delay = 0.0
