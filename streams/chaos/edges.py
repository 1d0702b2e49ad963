"""`rapport chaos --edges`: the stack's own edges as traffic sources, beside the replays.

Simulated Facebook and Instagram payloads (Page and Instagram webhook bodies) are POSTed,
signed, to the stack's webhook receiver, the way Meta delivers them: a delivery answered
anything but 200 (or not answered: the stack is down) is sent again until it gets a 200,
and one that got a 200 is never sent again (Meta does not resend it). Simulated Bluesky
commits are served by a loopback fake Jetstream (``/subscribe`` with ``cursor``) that the
stack's Bluesky agent reads; a connection with a cursor gets every event from it on, as
Jetstream replays. Both are paced to last the run's span and keep going across faults.

The truth of these lines is what the normalizers make of them with the headers the edge
gives them (source ``webhook`` and the entry id as ``via_account``; source ``stream``), and
the archive must hold, in ``raw_events FINAL``, each acknowledged delivery and each served
event the agent publishes (its own relevance filter, replayed in order) exactly once.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
from clickhouse_connect.driver.client import Client as StoreClient
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from streams.chaos.truth import KEY_OF, Key
from streams.clients import ClientsFile
from streams.contracts.headers import HEADER_RECEIVED_AT, HEADER_SOURCE, HEADER_VIA_ACCOUNT
from streams.embedded.ports import free_port
from streams.ingest.bluesky import SOURCE as BLUESKY_SOURCE
from streams.ingest.bluesky import Relevance
from streams.ingest.publisher import payload_key
from streams.ingest.webhooks import route
from streams.normalize.base import AccountIndex
from streams.normalize.records import RawRecord, normalize_records

WEBHOOK_PLATFORMS = ("facebook", "instagram")
JETSTREAM_PLATFORMS = ("bluesky",)
EDGE_PLATFORMS = WEBHOOK_PLATFORMS + JETSTREAM_PLATFORMS
SENDERS = 4  # concurrent deliveries (Meta sends several at once)
RETRY_S = 0.5  # between two attempts of one delivery
_CHUNK = 2000
# Credentials of agents the edges run must not start (they would reach the real platforms).
FOREIGN_ENV = ("RAPPORT_X_BEARER_TOKEN", "RAPPORT_MASTODON_ACCESS_TOKEN", "RAPPORT_MASTODON_ACCESS_TOKENS",
               "RAPPORT_REDDIT_CLIENT_ID", "RAPPORT_REDDIT_CLIENT_SECRET", "RAPPORT_INSTAGRAM_ACCESS_TOKEN",
               "RAPPORT_INSTAGRAM_ACCESS_TOKENS", "RAPPORT_INSTAGRAM_APP_SECRET")


def edge_headers(platform: str, line: bytes, now_ms: int) -> dict[str, str]:
    """The headers the edge's agent publishes ``line`` with (streams/ingest/webhooks.py, bluesky.py)."""
    if platform in WEBHOOK_PLATFORMS:
        _, via, _ = route(line)
        headers = {HEADER_SOURCE: "webhook", HEADER_RECEIVED_AT: str(now_ms)}
        if via:
            headers[HEADER_VIA_ACCOUNT] = via
        return headers
    return {HEADER_SOURCE: BLUESKY_SOURCE, HEADER_RECEIVED_AT: str(now_ms)}


def edge_keys(platform: str, lines: Iterable[bytes], index: AccountIndex, now_ms: int,
              dead_letters: Callable[[int], object]) -> Iterator[Key]:
    """Like :func:`streams.chaos.truth.expected_keys`, with each line's edge headers."""
    chunk: list[RawRecord] = []

    def flush() -> Iterator[Key]:
        batch = normalize_records(chunk, index, now_ms)
        dead_letters(len(batch.dead_letters))
        chunk.clear()
        for env in batch.envelopes.values():
            for row in env.interactions:
                yield tuple(str(v) for v in KEY_OF(row))  # type: ignore[misc]

    for n, line in enumerate(lines):
        chunk.append(RawRecord("chaos-edge", 0, n, platform, line, edge_headers(platform, line, now_ms), now_ms))
        if len(chunk) >= _CHUNK:
            yield from flush()
    yield from flush()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class EdgeEnv:
    """What the stack needs to run its edges against ours (passed to `rapport up`'s environment)."""

    webhook_port: int
    jetstream_url: str
    secret: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in base.items() if k not in FOREIGN_ENV}
        env.update({"RAPPORT_META_APP_SECRET": self.secret, "RAPPORT_WEBHOOK_HOST": "127.0.0.1",
                    "RAPPORT_WEBHOOK_PORT": str(self.webhook_port), "RAPPORT_BLUESKY_JETSTREAM_URL": self.jetstream_url,
                    "RAPPORT_BLUESKY_FILTER": "true", "RAPPORT_BLUESKY_RESOLVE_HANDLES": "false",
                    "RAPPORT_BLUESKY_ONLY_TRACKED_DIDS": "false"})
        return env

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/webhooks/meta"


class Pacer:
    """Releases item ``n`` at ``n / rate`` seconds after start (the replays' pacing)."""

    def __init__(self, count: int, span_s: float) -> None:
        self.rate = max(1, count) / span_s
        self.t0 = time.monotonic()

    def wait(self, n: int, stop: threading.Event) -> None:
        delay = self.t0 + n / self.rate - time.monotonic()
        if delay > 0:
            stop.wait(delay)


class WebhookSender:
    """Meta, as far as the stack can tell: each delivery until it is answered 200, then never again."""

    def __init__(self, files: dict[str, Path], edge: EdgeEnv, span_s: float, payload_max: int) -> None:
        self.payload_max = payload_max
        self.bodies: list[bytes] = []
        for platform in WEBHOOK_PLATFORMS:
            if platform in files:
                with open(files[platform], "rb") as f:
                    self.bodies += [raw.rstrip(b"\n") for raw in f if raw.strip()]
        self.bodies.sort(key=_webhook_time)
        self.edge = edge
        self.span_s = span_s
        self.acked: set[str] = set()  # archive keys of the deliveries answered 200
        self.attempts = 0
        self.refused: dict[int, int] = {}  # answers other than 200, by status (0: no answer)
        self.stop = threading.Event()
        self._next = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.error: BaseException | None = None

    def start(self) -> None:
        self._pacer = Pacer(len(self.bodies), self.span_s)
        self._threads = [threading.Thread(target=self._run, name=f"chaos-webhooks-{i}", daemon=True)
                         for i in range(SENDERS)]
        for t in self._threads:
            t.start()

    def done(self) -> bool:
        return not any(t.is_alive() for t in self._threads)

    def close(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(30)

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= len(self.bodies):
                return None
            self._next += 1
            return self._next - 1

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=15.0) as http:
                while not self.stop.is_set() and (n := self._take()) is not None:
                    self._pacer.wait(n, self.stop)
                    self._deliver(http, self.bodies[n])
        except BaseException as exc:  # noqa: BLE001 - reported by the runner
            self.error = exc

    def _deliver(self, http: httpx.Client, body: bytes) -> None:
        headers = {"X-Hub-Signature-256": sign(self.edge.secret, body), "Content-Type": "application/json"}
        while not self.stop.is_set():
            with self._lock:
                self.attempts += 1
            try:
                code = http.post(self.edge.webhook_url, content=body, headers=headers).status_code
            except httpx.HTTPError:
                code = 0
            if code == HTTPStatus.OK:
                with self._lock:
                    self.acked.add(payload_key(body, self.payload_max))
                return
            with self._lock:
                self.refused[code] = self.refused.get(code, 0) + 1
            self.stop.wait(RETRY_S)


def _webhook_time(body: bytes) -> int:
    try:
        entry = orjson.loads(body)["entry"][0]
        return int(entry.get("time") or 0)
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError):
        return 0


async def send_released(ws: ServerConnection, more: asyncio.Event, start: int, released: Callable[[], int],
                        message: Callable[[int], str], sent: Callable[[int], bool]) -> None:
    """One Jetstream connection's serve loop: send events ``start`` up to ``released()``, then
    wait until ``more`` is set (more released) or the client goes away, until the connection
    closes. ``sent(n)`` hears of each send once it is done (``n`` events sent from 0), so a
    count of served events never includes one a closed connection did not take; it returns
    False after it ended the connection itself. Shared with the ingest tests' fake Jetstream."""
    i = start
    closed = asyncio.ensure_future(ws.wait_closed())
    try:
        while not closed.done():
            while i < released():
                await ws.send(message(i))
                i += 1
                if not sent(i):
                    return
            more.clear()
            waiting = asyncio.ensure_future(more.wait())
            await asyncio.wait([waiting, closed], return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
    except ConnectionClosed:
        pass
    finally:
        closed.cancel()


class FakeJetstream:
    """A loopback Jetstream ``/subscribe``: events are released over the span (``added``), and a
    connection gets every released event from its ``cursor`` on (all of them without one)."""

    def __init__(self, path: Path | None, span_s: float) -> None:
        events: list[tuple[int, bytes]] = []
        if path is not None:
            with open(path, "rb") as f:
                for raw in f:
                    if raw.strip():
                        events.append((int(orjson.loads(raw)["time_us"]), raw.rstrip(b"\n")))
        events.sort(key=lambda e: e[0])  # Jetstream's order: time_us
        self.times = [t for t, _ in events]
        self.lines = [line for _, line in events]
        self.span_s = span_s
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/subscribe"
        self.released = 0
        self.served = 0  # the furthest index sent on any connection
        self.connections = 0
        self.cursors: list[int | None] = []  # each connection's, as the agent asked
        self._asked: dict[int, int | None] = {}
        self._more: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._begun = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="chaos-jetstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self.error is not None:
            raise RuntimeError(f"the fake Jetstream did not start: {self.error}")

    def done(self) -> bool:
        """Every event released and sent at least once."""
        return self.released >= len(self.lines) and self.served >= len(self.lines)

    def close(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(30)

    async def _main(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._more, self._stopping = asyncio.Event(), asyncio.Event()
            server: Server = await serve(self._handler, "127.0.0.1", self.port, process_request=self._request,
                                         max_size=2**24)
        except BaseException as exc:  # noqa: BLE001 - start() reports it
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        release = asyncio.create_task(self._release())
        try:
            await self._stopping.wait()
        finally:
            release.cancel()
            server.close()
            await server.wait_closed()

    def begin(self) -> None:
        """Start releasing events (with the replays: the faults' moments count from there)."""
        self._begun.set()

    async def _release(self) -> None:
        while not self._begun.is_set():
            await asyncio.sleep(0.1)
        pacer = Pacer(len(self.lines), self.span_s)
        assert self._more is not None
        while self.released < len(self.lines):
            self.released = min(len(self.lines), int((time.monotonic() - pacer.t0) * pacer.rate) + 1)
            self._more.set()
            await asyncio.sleep(0.1)
        self._more.set()

    def _request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.connections += 1
        query = parse_qs(urlsplit(request.path).query)
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        self.cursors.append(cursor)
        self._asked[id(connection)] = cursor
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        cursor = self._asked.pop(id(ws), None)
        assert self._more is not None

        def sent(i: int) -> bool:
            self.served = max(self.served, i)
            return True

        await send_released(ws, self._more, 0 if cursor is None else bisect.bisect_left(self.times, cursor),
                            lambda: self.released, lambda i: self.lines[i].decode(), sent)

    def published_keys(self, clients: ClientsFile, limit: int) -> set[str]:
        """Archive keys of the served events the Bluesky agent publishes: its relevance
        filter applied in order, as one process would (its known authors grow as it goes)."""
        relevance = Relevance(clients)
        out: set[str] = set()
        for line in self.lines[:self.served]:
            event = orjson.loads(line)
            if relevance.wants(line, event):
                did = event.get("did")
                if isinstance(did, str):
                    relevance.authors.add(did)
                out.add(payload_key(line, limit))
        return out


@dataclass
class EdgeCheck:
    """Acknowledged or served archive keys against ``raw_events FINAL``, per edge."""

    name: str
    want: int
    lost: int
    unexpected: int
    repeated: int
    examples: list[str]

    def as_json(self) -> dict[str, int]:
        return {"sent": self.want, "lost": self.lost, "unexpected": self.unexpected, "repeated": self.repeated}


def archived_raw(client: StoreClient, platforms: tuple[str, ...]) -> tuple[set[str], int]:
    """Distinct archive keys of ``platforms`` (only the edges feed them in an edges run), and
    the rows of ``raw_events FINAL`` beyond them (0 unless its key stopped deduplicating)."""
    where = f"platform IN ({', '.join(repr(p) for p in platforms)})"
    keys: set[str] = set()
    rows = 0
    for (key,) in client.query(f"SELECT raw_key FROM raw_events FINAL WHERE {where}").result_rows:
        rows += 1
        keys.add(str(key))
    return keys, rows - len(keys)


def check_edge(name: str, want: set[str], got: set[str], repeated: int) -> EdgeCheck:
    lost, extra = want - got, got - want
    return EdgeCheck(name, len(want), len(lost), len(extra), repeated, sorted(lost)[:5])


def wait_archived(client_of: Callable[[], StoreClient], checks: Callable[[StoreClient], list[EdgeCheck]],
                  timeout_s: float, alive: Callable[[], bool]) -> list[EdgeCheck]:
    """Poll until no edge lacks anything (an agent's outbox or the spool keeper may still be
    publishing when the broker's topics look drained), or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        client = client_of()
        try:
            found = checks(client)
        finally:
            client.close()
        if all(c.lost == 0 for c in found) or time.monotonic() > deadline or not alive():
            return found
        time.sleep(2.0)


class Edges:
    """The webhook sender and the fake Jetstream of one run, started with the traffic."""

    def __init__(self, files: dict[str, Path], clients: ClientsFile, span_s: float, payload_max: int) -> None:
        for chatty in ("httpx", "websockets"):  # a line per delivery and per connection otherwise
            logging.getLogger(chatty).setLevel(logging.WARNING)
        self.clients = clients
        self.payload_max = payload_max
        self.jetstream = FakeJetstream(files.get("bluesky"), span_s)
        self.env = EdgeEnv(webhook_port=free_port(), jetstream_url=self.jetstream.url)
        self.webhooks = WebhookSender(files, self.env, span_s, payload_max)
        self.platforms = tuple(p for p in EDGE_PLATFORMS if p in files)

    def describe(self) -> str:
        return (f"{len(self.webhooks.bodies)} webhook deliveries to {self.env.webhook_url}, "
                f"{len(self.jetstream.lines)} Jetstream events from {self.jetstream.url}")

    def start(self) -> None:
        """Listening (the agent may connect), nothing released yet."""
        self.jetstream.start()

    def begin(self) -> None:
        """Both paced from now, like the replays."""
        self.jetstream.begin()
        self.webhooks.start()

    def done(self) -> bool:
        for part in (self.webhooks, self.jetstream):
            if part.error is not None:
                raise RuntimeError(f"chaos edge traffic failed: {part.error!r}")
        return self.webhooks.done() and self.jetstream.done()

    def close(self) -> None:
        self.webhooks.close()
        self.jetstream.close()

    def checks(self, client: StoreClient) -> list[EdgeCheck]:
        out = []
        if any(p in self.platforms for p in WEBHOOK_PLATFORMS):
            got, repeated = archived_raw(client, WEBHOOK_PLATFORMS)
            out.append(check_edge("webhooks", set(self.webhooks.acked), got, repeated))
        if "bluesky" in self.platforms:
            got, repeated = archived_raw(client, JETSTREAM_PLATFORMS)
            out.append(check_edge("jetstream", self.jetstream.published_keys(self.clients, self.payload_max),
                                  got, repeated))
        return out

    def summary(self, found: list[EdgeCheck]) -> dict[str, object]:
        out: dict[str, object] = {c.name: c.as_json() for c in found}
        if "webhooks" in out:
            out["webhooks"] = {**c_json(out["webhooks"]), "acked": len(self.webhooks.acked),
                               "attempts": self.webhooks.attempts,
                               "refused": {str(k): v for k, v in sorted(self.webhooks.refused.items())}}
        if "jetstream" in out:
            out["jetstream"] = {**c_json(out["jetstream"]), "served": self.jetstream.served,
                                "connections": self.jetstream.connections,
                                "resumed_with_cursor": sum(c is not None for c in self.jetstream.cursors)}
        return out


def c_json(value: object) -> dict[str, object]:
    assert isinstance(value, dict)
    return dict(value)
