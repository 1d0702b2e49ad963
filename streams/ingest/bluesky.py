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
largest ``time_us`` archived in ``raw_events``, less ``ingest_rewind_s``; events the
rewind sends again are recognised by their archive key and not published twice.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from streams.clients import ClientsFile
from streams.ingest.agent import CredentialsRefused, RateLimited, Retry, Seen, retry_after_s, supervise
from streams.ingest.httpio import TRANSIENT
from streams.ingest.runtime import Context
from streams.normalize.base import raw_key_of
from streams.normalize.bluesky import FOLLOW, POST, SIGNALS

PLATFORM = "bluesky"
SOURCE = "stream"
COLLECTIONS: tuple[str, ...] = (POST, *SIGNALS, FOLLOW)


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

    async def run(self) -> None:
        await supervise(self.status, self.settings, self.session,
                        expected=(*TRANSIENT, WebSocketException, asyncio.TimeoutError))

    async def resume_point(self) -> int | None:
        """Where to resume: the archived cursor while something published may not be
        archived yet (it could have died with the broker), else where reading stopped."""
        archived = await self.ctx.cursors.jetstream_cursor(SOURCE)
        self.status.cursor = str(archived or "")
        if self.last_published_us is not None and (archived is None or self.last_published_us > archived):
            base = archived if archived is not None else self.first_published_us
        else:
            known = [t for t in (archived, self.last_time_us) if t is not None]
            base = max(known) if known else None
        if base is None:
            return None
        cursor = max(0, base - int(self.settings.ingest_rewind_s * 1_000_000))
        if not self.loaded:
            # What the rewind (or a crash before the store caught up) sends again.
            self.seen.update(await self.ctx.cursors.bluesky_keys_since(cursor, SOURCE))
        return cursor

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
            return
        if not self.seen.add(raw_key_of(event)):
            return
        did = event.get("did")
        if isinstance(did, str):
            self.relevance.authors.add(did)
        if stamp is not None:
            self.first_published_us = self.first_published_us or stamp
            self.last_published_us = max(self.last_published_us or 0, stamp)
        await self.ctx.outbox.put(PLATFORM, raw, SOURCE)
