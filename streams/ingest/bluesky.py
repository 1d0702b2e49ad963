"""`rapport ingest bluesky`: the Jetstream WebSocket -> ``rapport.raw.bluesky``.

One connection reads posts, likes, reposts and follows of the whole network
(``wantedCollections``) and publishes, exactly as received, the events that can concern a
tracked account: the normalizer attributes from the payload alone, so an event that names
no tracked DID and no listened tag concerns nobody (replies, likes and quotes name their
target's DID inside its AT-URI). Deletes name only the deleting author, so deletes by
people who have dealt with a tracked account (authors already archived) pass too.
``bluesky_filter=false`` publishes everything; ``bluesky_only_tracked_dids`` asks
Jetstream for the tracked accounts' own records only (``wantedDids``).

Resume: Jetstream replays from a ``cursor`` (``time_us``, microseconds). The cursor is the
agent's contiguous watermark (``<data_dir>/cursors/bluesky.json``): the furthest ``time_us``
up to which every event it published is confirmed in ``raw_events``
(streams/ingest/watermark.py), less ``ingest_rewind_s``. Records land on random
partitions, so the newest archived event is no resume point: older ones may have died with
the broker. Only without a watermark (a first run, an upgrade) is the largest archived
``time_us`` used. Events sent again that the archive holds are recognised by their
archive key and not published twice.

Handles: Jetstream names people by DID only. With ``bluesky_resolve_handles`` (off by
default, so the agent makes no call but Jetstream's unless asked) the author's handle is
looked up on the AppView (``app.bsky.actor.getProfiles``, up to 25 DIDs a request), kept in
an in-memory LRU cache for ``bluesky_handle_ttl_s``, and added to the published event as a
top-level ``"_handle"`` (the received bytes are otherwise untouched). Source stays
``stream``: the resume cursor and the seen set read the archive by source, and the handle
is an optional extra, not another way of receiving the event. A lookup that fails publishes
the event without a handle and pauses lookups for a minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from streams.clients import ClientsFile
from streams.ingest.agent import CredentialsRefused, RateLimited, Retry, Seen, retry_after_s, supervise
from streams.ingest.httpio import TRANSIENT
from streams.ingest.publisher import payload_key
from streams.ingest.resume import ResumeBook, resume_path
from streams.ingest.runtime import Context
from streams.limits import payload_max_bytes
from streams.normalize.base import raw_key_of
from streams.normalize.bluesky import FOLLOW, POST, SIGNALS
from streams.settings import Settings

log = logging.getLogger("streams.ingest")

PLATFORM = "bluesky"
SOURCE = "stream"
COLLECTIONS: tuple[str, ...] = (POST, *SIGNALS, FOLLOW)
HANDLE_KEY = "_handle"


class HandleResolver:
    """DID -> handle through the AppView, batched and cached (LRU with a TTL).

    DIDs the AppView does not know (or whose handle is ``handle.invalid``) are cached as
    having none, so they are not asked again before the TTL. A failed request resolves
    nothing and pauses lookups for ``pause_s``: resolution never holds publishing up long.
    """

    BATCH = 25
    INVALID = "handle.invalid"

    def __init__(self, settings: Settings, pause_s: float = 60.0) -> None:
        self.url = settings.bluesky_appview_url.rstrip("/") + "/xrpc/app.bsky.actor.getProfiles"
        self.ttl_s = settings.bluesky_handle_ttl_s
        self.size = settings.bluesky_handle_cache_size
        self.timeout_s = settings.bluesky_resolve_timeout_s
        self.pause_s = pause_s
        self.cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self.client: httpx.AsyncClient | None = None
        self.requests = 0
        self.failures = 0
        self.paused_until = 0.0

    def _cached(self, did: str, now: float) -> tuple[bool, str | None]:
        hit = self.cache.get(did)
        if hit is None or hit[0] <= now:
            return False, None
        self.cache.move_to_end(did)
        return True, hit[1]

    def _store(self, did: str, handle: str | None, now: float) -> None:
        self.cache[did] = (now + self.ttl_s, handle)
        self.cache.move_to_end(did)
        while len(self.cache) > self.size:
            self.cache.popitem(last=False)

    async def resolve(self, dids: Iterable[str]) -> dict[str, str]:
        """The handles known for ``dids`` (those without one are left out)."""
        now = time.monotonic()
        out: dict[str, str] = {}
        missing: list[str] = []
        for did in dict.fromkeys(dids):
            known, handle = self._cached(did, now)
            if not known:
                missing.append(did)
            elif handle:
                out[did] = handle
        if not missing or now < self.paused_until:
            return out
        for i in range(0, len(missing), self.BATCH):
            batch = missing[i:i + self.BATCH]
            try:
                found = await self._fetch(batch)
            except Exception as exc:  # noqa: BLE001 - a failed lookup must never cost the event
                self.failures += 1
                self.paused_until = time.monotonic() + self.pause_s
                log.warning("bluesky: handle lookup failed, publishing without handles for %.0fs: %s",
                            self.pause_s, str(exc)[:200] or type(exc).__name__)
                break
            for did in batch:
                handle = found.get(did)
                self._store(did, handle, now)
                if handle:
                    out[did] = handle
        return out

    async def _fetch(self, dids: list[str]) -> dict[str, str]:
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=self.timeout_s, trust_env=False, follow_redirects=True)
        self.requests += 1
        response = await self.client.get(self.url, params=[("actors", d) for d in dids])
        if response.status_code != 200:
            raise ValueError(f"getProfiles: HTTP {response.status_code}")
        doc = orjson.loads(response.content)
        profiles = doc.get("profiles") if isinstance(doc, dict) else None
        if not isinstance(profiles, list):
            raise ValueError("getProfiles: no profiles in the answer")
        found: dict[str, str] = {}
        for profile in profiles:
            if isinstance(profile, dict):
                did, handle = profile.get("did"), profile.get("handle")
                if isinstance(did, str) and isinstance(handle, str) and handle and handle != self.INVALID:
                    found[did] = handle
        return found

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None


def with_handle(raw: bytes, handle: str) -> bytes:
    """``raw`` (a JSON object) with ``"_handle"`` added first; the rest stays byte for byte."""
    body = raw.lstrip()
    return b'{"' + HANDLE_KEY.encode() + b'":' + orjson.dumps(handle) + b"," + body[1:]


class Relevance:
    """Which Jetstream events can concern a tracked account (a cheap superset of what the
    normalizer attributes: it may let through more, never less)."""

    def __init__(self, clients: ClientsFile) -> None:
        self.dids = sorted({acc.account_id for _, acc in clients.accounts() if acc.platform == PLATFORM})
        self._did_bytes = [d.encode() for d in self.dids]
        tags = {src.strip().lstrip("#").lower() for _, acc in clients.accounts()
                if acc.platform == PLATFORM for src in acc.listen if src.strip().startswith("#")}
        self._tags = [t.encode() for t in sorted(tags) if t]
        self.authors = Seen(500_000)  # people whose events were published: their deletes matter

    def wants(self, raw: bytes, event: dict[str, object]) -> bool:
        if any(d in raw for d in self._did_bytes):
            return True
        if self._tags:
            lower = raw.lower()
            if any(t in lower for t in self._tags):
                return True
        commit = event.get("commit")
        if isinstance(commit, dict) and commit.get("operation") == "delete":
            return str(event.get("did", "")) in self.authors
        return False


def jetstream_url(base: str, cursor: int | None, dids: list[str]) -> str:
    """The subscribe URL with collections, optional DIDs and the cursor as query parameters."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("wantedCollections", "wantedDids", "cursor")]
    query += [("wantedCollections", c) for c in COLLECTIONS]
    query += [("wantedDids", d) for d in dids]
    if cursor is not None:
        query.append(("cursor", str(cursor)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


class BlueskyAgent:
    name = "bluesky"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.status = ctx.status
        self.relevance = Relevance(ctx.clients)
        self.seen = Seen()
        self.last_time_us: int | None = None  # newest event received by this process
        self.first_published_us: int | None = None  # of this process
        self.last_published_us: int | None = None
        self.loaded = False
        self.handles = HandleResolver(self.settings) if self.settings.bluesky_resolve_handles else None
        self.book = ResumeBook(resume_path(self.settings.data_dir, self.name), PLATFORM)
        self.mark = self.book.mark(SOURCE)
        self.payload_max = payload_max_bytes(self.settings)

    async def run(self) -> None:
        keeper = asyncio.create_task(self.book.keep(self.ctx.cursors, self.status, self.settings.spool_confirm_s))
        try:
            await supervise(self.status, self.settings, self.session,
                            expected=(*TRANSIENT, WebSocketException, asyncio.TimeoutError))
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            if self.handles is not None:
                await self.handles.close()

    async def resume_point(self) -> int | None:
        """Where to resume: the contiguous watermark (every event published up to it is
        archived, streams/ingest/watermark.py); without one yet (a first run, an upgrade),
        the newest archived ``time_us``, less the rewind either way."""
        if self.mark.safe is not None:
            base: int | None = self.mark.safe
            self.status.cursor = str(base)
        else:
            base = await self._archive_point()
        if base is None:
            return None
        cursor = max(0, base - int(self.settings.ingest_rewind_s * 1_000_000))
        if not self.loaded:
            # What the rewind (or a crash before the store caught up) sends again.
            self.seen.update(await self.ctx.cursors.bluesky_keys_since(cursor, SOURCE))
        return cursor

    async def _archive_point(self) -> int | None:
        archived = await self.ctx.cursors.jetstream_cursor(SOURCE)
        self.status.cursor = str(archived or "")
        if self.last_published_us is not None and (archived is None or self.last_published_us > archived):
            base = archived if archived is not None else self.first_published_us
        else:
            known = [t for t in (archived, self.last_time_us) if t is not None]
            base = max(known) if known else None
        return base

    async def session(self) -> None:
        if not self.loaded:
            self.relevance.authors.update(await self.ctx.cursors.bluesky_authors(SOURCE))
        cursor = await self.resume_point()
        self.loaded = True
        dids = self.relevance.dids if self.settings.bluesky_only_tracked_dids else []
        url = jetstream_url(self.settings.bluesky_jetstream_url, cursor, dids)
        try:
            ws = await connect(url, open_timeout=self.settings.ingest_http_timeout_s, max_size=2**24, proxy=None)
        except InvalidStatus as exc:
            code, headers = exc.response.status_code, exc.response.headers
            if code == 429:
                raise RateLimited(f"jetstream: HTTP {code}", retry_after_s(headers)) from exc
            if code in (401, 403):
                raise CredentialsRefused(f"jetstream: HTTP {code}") from exc
            raise Retry(f"jetstream: HTTP {code}", retry_after_s(headers)) from exc
        async with ws:
            self.status.connected()
            refresh = asyncio.create_task(self._refresh_cursor())
            try:
                while True:
                    message = await asyncio.wait_for(ws.recv(), self.settings.ingest_stall_s)
                    await self.handle(message if isinstance(message, bytes) else message.encode())
            finally:
                refresh.cancel()

    async def _refresh_cursor(self) -> None:
        """Keep the status' durable cursor current (it is also re-read on every reconnect)."""
        while True:
            await asyncio.sleep(self.settings.ingest_cursor_refresh_s)
            try:
                archived = await self.ctx.cursors.jetstream_cursor(SOURCE)
            except Exception as exc:  # noqa: BLE001 - a store hiccup only delays the status
                self.status.error(f"archive cursor: {exc}")
                continue
            self.status.cursor = str(archived or "")

    async def handle(self, raw: bytes) -> None:
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            # Not ours to judge: published alone, it dead-letters with its reason.
            self.status.event()
            await self.ctx.outbox.put(PLATFORM, raw, SOURCE)
            return
        time_us = event.get("time_us")
        stamp = time_us if isinstance(time_us, int) and not isinstance(time_us, bool) else None
        self.status.event(stamp / 1_000_000 if stamp else None)
        if stamp is not None:
            self.last_time_us = stamp if self.last_time_us is None else max(self.last_time_us, stamp)
        if self.settings.bluesky_filter and not self.relevance.wants(raw, event):
            if stamp is not None:
                self.mark.covered(stamp)
            return
        if not self.seen.add(raw_key_of(event)):
            if stamp is not None:
                self.mark.covered(stamp)
            return
        did = event.get("did")
        if isinstance(did, str):
            self.relevance.authors.add(did)
        if stamp is not None:
            self.first_published_us = self.first_published_us or stamp
            self.last_published_us = max(self.last_published_us or 0, stamp)
        if self.handles is not None and isinstance(did, str) and HANDLE_KEY not in event:
            handle = (await self.handles.resolve([did])).get(did)
            if handle and event:  # a non-empty object: a comma can follow the added key
                raw = with_handle(raw, handle)
        if stamp is not None:
            self.mark.published(stamp, payload_key(raw, self.payload_max))
            self.mark.covered(stamp)
        await self.ctx.outbox.put(PLATFORM, raw, SOURCE)
