"""What every ingest agent shares: reconnecting, rate limits, status, the outbox, the seen set.

An agent is a long-running asyncio task that reads one platform and publishes each payload
as received to ``rapport.raw.<platform>``. Its connections run under :func:`supervise`,
which reconnects with exponential backoff and jitter and waits out rate limits
(``Retry-After``, ``x-rate-limit-reset``). What it publishes goes through an
:class:`Outbox`, which owns the synchronous :class:`Publisher` on one thread of its own so
the event loop never waits on the broker. What it is doing is kept in a :class:`Status`,
logged as one line and written to ``<data_dir>/agents/<name>.json`` for the board.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import orjson

from streams.errors import RapportError
from streams.ingest.publisher import Publisher
from streams.settings import Settings

log = logging.getLogger("streams.ingest")


class IngestError(RapportError):
    """An agent cannot do its work as configured (a refused credential, a wrong account)."""


class Retry(Exception):  # noqa: N818 - it is an instruction to the supervisor, not an error
    """A connection ended or failed in a way worth retrying; ``delay_s`` overrides the backoff."""

    def __init__(self, reason: str, delay_s: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s
        self.status = status  # the HTTP status that caused it, when one did


class RateLimited(Retry):
    """The platform said to slow down (HTTP 429 or an exhausted quota)."""


class CredentialsRefused(Retry):
    """401/403: retried slowly, since tokens are sometimes fixed while the agent runs."""


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait according to a response's rate-limit headers, or ``None``.

    ``Retry-After`` is seconds or an HTTP date; ``x-rate-limit-reset`` (X) is epoch seconds;
    ``x-ratelimit-reset`` is seconds to wait on Reddit but an ISO time on Mastodon, so the
    value's form decides.
    """
    now = time.time() if now is None else now
    lower = {k.lower(): v for k, v in headers.items()}
    value = lower.get("retry-after")
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            pass
    for name in ("x-rate-limit-reset", "x-ratelimit-reset"):
        value = (lower.get(name) or "").strip()
        if not value:
            continue
        try:
            number = float(value)
        except ValueError:
            try:
                return max(0.0, datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - now)
            except ValueError:
                continue
        # Epoch seconds are large; a count of seconds to wait is small.
        return max(0.0, number - now) if number > 1e9 else max(0.0, number)
    return None


class Backoff:
    """Exponential backoff with jitter: the n-th delay is drawn from [d/2, d], d = initial * 2^n."""

    def __init__(self, initial_s: float, max_s: float, rand: Callable[[], float] = random.random) -> None:
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self.rand = rand
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(self.max_s, self.initial_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return ceiling / 2 + self.rand() * ceiling / 2

    def reset(self) -> None:
        self.attempt = 0


class Seen:
    """A bounded set of recently seen keys (oldest forgotten first): de-duplication across
    reconnects and polls. Forgetting only ever costs a harmless duplicate."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._keys: dict[str, None] = {}

    def add(self, key: str) -> bool:
        """Remember ``key``; ``True`` when it was new."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            for old in list(self._keys)[: self.capacity // 10]:
                del self._keys[old]
        return True

    def update(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.add(key)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)


@dataclass
class Status:
    """What an agent is doing, for its log line and its status file."""

    name: str
    state: str = "starting"  # starting | connected | degraded | backoff | stopped
    connected_at: float | None = None
    received: int = 0
    published: int = 0
    last_event_time: float | None = None  # epoch s of the newest event (its platform time)
    last_received_at: float | None = None
    cursor: str = ""  # the resume point read from the archive, as the platform spells it
    reconnects: int = 0
    rate_limited: int = 0
    last_error: str = ""
    last_error_at: float | None = None
    retry_in_s: float | None = None
    parts: dict[str, str] = field(default_factory=dict)  # per connection, for multi-stream agents
    notes: list[str] = field(default_factory=list)
    _rate: float = 0.0
    _rate_at: float = field(default_factory=time.monotonic)
    _rate_count: int = 0

    def connected(self, part: str | None = None) -> None:
        if part is not None:
            self.parts[part] = "connected"
        self._set_state("connected")
        self.retry_in_s = None

    def waiting(self, delay_s: float, reason: str, part: str | None = None) -> None:
        if part is not None:
            self.parts[part] = f"retrying in {delay_s:.1f}s"
        self._set_state("backoff")
        self.retry_in_s = delay_s
        self.reconnects += 1
        self.error(reason)

    def _set_state(self, wanted: str) -> None:
        """With several connections: connected when all are, degraded when some are."""
        if self.parts:
            up = sum(1 for v in self.parts.values() if v == "connected")
            wanted = "connected" if up == len(self.parts) else ("degraded" if up else "backoff")
        if wanted != "connected" and self.state == "connected":
            self.connected_at = None
        if wanted == "connected" and self.connected_at is None:
            self.connected_at = time.time()
        self.state = wanted

    def error(self, text: str) -> None:
        self.last_error = text[:300]
        self.last_error_at = time.time()

    def event(self, event_time_s: float | None = None) -> None:
        self.received += 1
        self._rate_count += 1
        self.last_received_at = time.time()
        if event_time_s is not None and (self.last_event_time is None or event_time_s > self.last_event_time):
            self.last_event_time = event_time_s

    def events_per_s(self) -> float:
        """Received events per second, smoothed (decays over ~10 s)."""
        now = time.monotonic()
        elapsed = now - self._rate_at
        if elapsed >= 1.0:
            instant = self._rate_count / elapsed
            weight = min(1.0, elapsed / 10.0)
            self._rate = self._rate + weight * (instant - self._rate)
            self._rate_count = 0
            self._rate_at = now
        return self._rate

    def lag_s(self) -> float | None:
        """How far the newest event received trails the wall clock."""
        if self.last_event_time is None:
            return None
        return max(0.0, time.time() - self.last_event_time)

    def snapshot(self) -> dict[str, Any]:
        lag = self.lag_s()
        return {
            "name": self.name, "state": self.state, "connected": self.state == "connected",
            "connected_at": self.connected_at, "lag_s": None if lag is None else round(lag, 3),
            "events_per_s": round(self.events_per_s(), 2), "received": self.received,
            "published": self.published, "last_event_time": self.last_event_time,
            "last_received_at": self.last_received_at, "cursor": self.cursor,
            "reconnects": self.reconnects, "rate_limited": self.rate_limited,
            "last_error": self.last_error, "last_error_at": self.last_error_at,
            "retry_in_s": self.retry_in_s, "parts": dict(self.parts), "notes": list(self.notes),
            "pid": os.getpid(), "updated_at": time.time(),
        }

    def line(self) -> str:
        snap = self.snapshot()
        lag = "-" if snap["lag_s"] is None else f"{snap['lag_s']:.1f}s"
        parts = " ".join(f"[{k}: {v}]" for k, v in sorted(self.parts.items()))
        return (f"{self.name}: {self.state} lag={lag} rate={snap['events_per_s']:.1f}/s "
                f"received={self.received} published={self.published} cursor={self.cursor or '-'} "
                f"reconnects={self.reconnects} last_error={self.last_error or '-'}" + (f" {parts}" if parts else ""))


def status_path(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / "agents" / f"{name}.json"


def write_status(path: Path, status: Status) -> None:
    """Atomically replace the status file, so the board never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(status.snapshot(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    tmp.replace(path)


async def report_status(status: Status, path: Path, settings: Settings) -> None:
    """Write the status file every few seconds and log the status line now and then."""
    last_log = 0.0
    last_state = ""
    while True:
        try:
            write_status(path, status)
        except OSError as exc:
            log.warning("%s: cannot write %s: %s", status.name, path, exc)
        now = time.monotonic()
        if status.state != last_state or now - last_log >= settings.ingest_status_log_s:
            log.info("%s", status.line())
            last_log, last_state = now, status.state
        await asyncio.sleep(settings.ingest_status_interval_s)


class Outbox:
    """The agent's way to the broker: payloads queue here and one thread of its own hands
    them to the synchronous :class:`Publisher` (batching, linger, headers), so neither
    the event loop nor other callers ever touch the producer concurrently."""

    def __init__(self, publisher: Publisher, status: Status, linger_s: float, high_water: int = 5000) -> None:
        self.publisher = publisher
        self.status = status
        self.linger_s = linger_s
        self.high_water = high_water
        self._queue: list[tuple[str, bytes, str, str, int | None]] = []
        self._exec = ThreadPoolExecutor(1, thread_name_prefix="rapport-outbox")

    @classmethod
    async def open(cls, settings: Settings, broker_url: str, status: Status) -> Outbox:
        publisher = await asyncio.to_thread(Publisher, settings, broker_url)
        return cls(publisher, status, settings.publish_linger_s)

    async def put(self, platform: str, payload: bytes, source: str, via_account: str = "",
                  received_at: int | None = None) -> None:
        """Queue one payload exactly as received; waits only when the broker falls behind.
        ``received_at`` (epoch ms) is kept when given (a payload published again), else
        stamped when the record is sent."""
        self._queue.append((platform, payload, source, via_account, received_at))
        self.status.published += 1
        if len(self._queue) >= self.high_water:
            await self._hand_over()

    async def _hand_over(self) -> None:
        batch, self._queue = self._queue, []
        await asyncio.get_running_loop().run_in_executor(self._exec, self._apply, batch)

    def _apply(self, batch: list[tuple[str, bytes, str, str, int | None]]) -> None:
        for platform, payload, source, via, received_at in batch:
            self.publisher.add(platform, payload, source, received_at, via_account=via)
        self.publisher.tick()

    async def pump(self) -> None:
        """Background task: hand queued payloads over and let partial arrays linger out."""
        while True:
            await asyncio.sleep(self.linger_s / 2)
            await self._hand_over()

    async def flush(self) -> None:
        """Return once the broker has acknowledged everything put so far."""
        await self._hand_over()
        await asyncio.get_running_loop().run_in_executor(self._exec, self.publisher.flush)

    async def close(self) -> None:
        try:
            await self._hand_over()
            await asyncio.get_running_loop().run_in_executor(self._exec, self.publisher.close)
        finally:
            self._exec.shutdown(wait=True)


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def supervise(status: Status, settings: Settings, session: Callable[[], Awaitable[None]],
                    part: str | None = None, expected: tuple[type[BaseException], ...] = ()) -> None:
    """Run ``session`` forever, reconnecting with backoff and jitter.

    A session returns when the server ends it cleanly and raises when it fails; either way
    it is started again. The backoff resets once a session has delivered events. Rate
    limits replace the backoff by the platform's own wait (capped by
    ``ingest_max_wait_s``); refused credentials wait the longest backoff.
    """
    backoff = Backoff(settings.ingest_backoff_initial_s, settings.ingest_backoff_max_s)
    who = f"{status.name}{f' ({part})' if part else ''}"
    while True:
        before = status.received
        delay: float | None = None
        try:
            await session()
            reason = "the server closed the stream"
        except RateLimited as exc:
            status.rate_limited += 1
            reason, delay = f"rate limited: {exc.reason}", exc.delay_s
        except CredentialsRefused as exc:
            reason, delay = f"credentials refused: {exc.reason}", settings.ingest_backoff_max_s
        except Retry as exc:
            reason, delay = exc.reason, exc.delay_s
        except expected as exc:
            reason = describe(exc)
        except Exception as exc:  # noqa: BLE001 - an agent outlives surprises, loudly
            log.exception("%s: unexpected failure", who)
            reason = describe(exc)
        if status.received > before:
            backoff.reset()
        wait = backoff.next() if delay is None else min(max(delay, 0.0), settings.ingest_max_wait_s)
        log.warning("%s: %s; reconnecting in %.1fs", who, reason, wait)
        status.waiting(wait, reason, part)
        await asyncio.sleep(wait)


def epoch_of_iso(value: object) -> float | None:
    """Epoch seconds of an ISO-8601 time, ``None`` when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
