"""`rapport ingest mastodon`: the streaming API (server-sent events) -> ``rapport.raw.mastodon``.

Per tracked account with an access token: its ``user`` stream (its own statuses and its
notifications: mentions, favourites, boosts, follows), published with source ``stream``
and ``via_account`` = the account, because a notification does not say whose it is. Per
listened ``#tag`` (any account's token): the ``hashtag`` stream, source ``listen:#tag``.
An SSE event is published as ``{"stream", "event", "payload"}`` with ``payload`` the
event's data exactly as received (a JSON string, or the bare id of a ``delete``): the shape
of the streaming API's WebSocket variant, which the normalizer reads.

Gaps (a restart, a reconnect) are closed over REST each time a stream (re)connects: the
account's notifications (source ``inbox``), its own statuses, or the tag's timeline, paged
back from the newest until an item the archive (``raw_events``) or this process already
has. Status and notification ids are unique per server, so "is this id archived" is exact
even though the archive does not record which account an item came through.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from streams.clients import ClientsFile, TrackedAccount
from streams.errors import ConfigError
from streams.ingest.agent import CredentialsRefused, Retry, Seen, epoch_of_iso, supervise
from streams.ingest.httpio import TRANSIENT, checked_stream, get_json, http_client, sse_events
from streams.ingest.publisher import payload_key
from streams.ingest.resume import ResumeBook, reached, resume_path
from streams.ingest.runtime import Context
from streams.limits import payload_max_bytes
from streams.settings import Settings

log = logging.getLogger("streams.ingest")

PLATFORM = "mastodon"
PAGE = 40  # the API's largest page
PUBLISHED_EVENTS = frozenset({"update", "status.update", "notification", "delete", "conversation"})

# The archive key of a stored payload, spelled like :func:`event_key`: ``n:<id>`` for a
# notification, ``s:<id>`` for a status, ``d:<id>`` for a delete (streamed or REST).
_EVENT = "JSONExtractString(payload, 'event')"
_INNER = ("if(JSONType(payload, 'payload') = 'String', JSONExtractString(payload, 'payload'), "
          "JSONExtractRaw(payload, 'payload'))")
ARCHIVE_KEY_SQL = (
    f"multiIf(JSONHas(payload, 'event'), "
    f"if({_EVENT} = 'delete', concat('d:', JSONExtractString(payload, 'payload')), "
    f"concat(if({_EVENT} = 'notification', 'n:', 's:'), JSONExtractString({_INNER}, 'id'))), "
    f"JSONHas(payload, 'content') OR NOT JSONHas(payload, 'type'), concat('s:', JSONExtractString(payload, 'id')), "
    f"concat('n:', JSONExtractString(payload, 'id')))"
)


@dataclass(frozen=True)
class Reader:
    """One stream to read: a tracked account's ``user`` stream, or a listened hashtag's."""

    part: str  # status label: "user:<account id>" or "#tag"
    server: str
    streaming: str
    token: SecretStr
    account_id: str | None = None  # None with tag set: a hashtag; None without: ask the server
    tag: str | None = None
    candidates: tuple[str, ...] = ()  # tracked ids a token of unknown owner may belong to


def _token_for(settings: Settings, acc: TrackedAccount) -> SecretStr | None:
    tokens = settings.mastodon_access_tokens
    handle = acc.handle.lstrip("@")
    for key in (acc.account_id, acc.handle, handle, handle.split("@", 1)[0]):
        if key and key in tokens:
            return tokens[key]
    return None


def plan_readers(settings: Settings, clients: ClientsFile) -> tuple[list[Reader], list[str]]:
    """The streams the clients file and the tokens allow, and a note for what they do not."""
    accounts = [acc for _, acc in clients.accounts() if acc.platform == PLATFORM]
    readers: list[Reader] = []
    notes: list[str] = []
    unassigned: list[TrackedAccount] = []
    seen: set[str] = set()

    def urls(account_id: str | None) -> tuple[str, str]:
        server = (settings.mastodon_urls.get(account_id or "") or settings.mastodon_url).rstrip("/")
        own = account_id in settings.mastodon_urls
        streaming = server if own else (settings.mastodon_streaming_url or server).rstrip("/")
        return server, streaming

    for acc in accounts:
        if acc.account_id in seen:
            continue
        seen.add(acc.account_id)
        token = _token_for(settings, acc)
        if token is None:
            unassigned.append(acc)
            continue
        server, streaming = urls(acc.account_id)
        readers.append(Reader(f"user:{acc.account_id}", server, streaming, token, acc.account_id))
    single = settings.mastodon_access_token
    if single is not None and unassigned:
        if len(unassigned) == 1:
            acc = unassigned.pop()
            server, streaming = urls(acc.account_id)
            readers.append(Reader(f"user:{acc.account_id}", server, streaming, single, acc.account_id))
        else:
            server, streaming = urls(None)
            ids = tuple(a.account_id for a in unassigned)
            readers.append(Reader("user:?", server, streaming, single, None, candidates=ids))
            notes.append(f"mastodon: RAPPORT_MASTODON_ACCESS_TOKEN reads only the account it belongs to; give "
                         f"accounts {', '.join(ids)} their own in RAPPORT_MASTODON_ACCESS_TOKENS")
            unassigned = []
    for acc in unassigned:
        notes.append(f"mastodon: no access token for account {acc.account_id} (set RAPPORT_MASTODON_ACCESS_TOKEN "
                     "or RAPPORT_MASTODON_ACCESS_TOKENS); its notifications are not read")
    tags = sorted({src.strip().lstrip("#").lower() for acc in accounts for src in acc.listen
                   if src.strip().startswith("#") and src.strip("# ")})
    any_token = single or next((r.token for r in readers), None)
    if tags and any_token is None:
        notes.append(f"mastodon: no access token to read the listened tags {', '.join('#' + t for t in tags)}")
    elif any_token is not None:
        server, streaming = urls(None)
        readers.extend(Reader(f"#{t}", server, streaming, any_token, tag=t) for t in tags)
    return readers, notes


def event_key(event: str, data: str) -> tuple[str | None, float | None]:
    """De-duplication key of a streamed event and its time; ``None`` for events not kept."""
    if event not in PUBLISHED_EVENTS:
        return None, None
    if event == "delete":
        return f"d:{data.strip().strip(chr(34))}", None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return f"x:{hash(data)}", None  # published as received: it dead-letters with its reason
    if not isinstance(obj, dict):
        return f"x:{hash(data)}", None
    if event == "conversation":
        obj = obj.get("last_status") if isinstance(obj.get("last_status"), dict) else obj
    ident = str(obj.get("id", ""))
    when = epoch_of_iso(obj.get("created_at"))
    if event == "notification":
        return f"n:{ident}", when
    if event == "status.update":
        return f"e:{ident}:{obj.get('edited_at', '')}", when
    return f"s:{ident}", when


def _position(item: dict[str, Any]) -> int | None:
    """A REST item's place in its timeline: its creation time (ms)."""
    when = epoch_of_iso(item.get("created_at"))
    return None if when is None else int(when * 1000)


def rest_key(item: dict[str, Any]) -> str:
    """Key of a REST status or notification, spelled as the archive key."""
    is_status = "content" in item or not isinstance(item.get("type"), str)
    return f"{'s' if is_status else 'n'}:{item.get('id', '')}"


class MastodonAgent:
    name = "mastodon"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.status = ctx.status
        self.readers, notes = plan_readers(ctx.settings, ctx.clients)
        for note in notes:
            if note not in self.status.notes:
                self.status.notes.append(note)
        self.seen: dict[str, Seen] = {r.part: Seen() for r in self.readers}
        self.owner: dict[str, str] = {}  # part -> account id, once the server said it
        self.book = ResumeBook(resume_path(self.settings.data_dir, self.name), PLATFORM)
        self.payload_max = payload_max_bytes(self.settings)

    async def run(self) -> None:
        if not self.readers:
            raise ConfigError("mastodon: no access token and nothing to read; see docs/ingest.md")
        keeper = asyncio.create_task(self.book.keep(self.ctx.cursors, self.status, self.settings.spool_confirm_s))
        try:
            async with http_client(self.settings) as client:
                await asyncio.gather(*(
                    supervise(self.status, self.settings, self._session(client, r), part=r.part, expected=TRANSIENT)
                    for r in self.readers))
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)

    def _session(self, client: httpx.AsyncClient, reader: Reader):  # type: ignore[no-untyped-def]
        async def session() -> None:
            await self.read(client, reader)
        return session

    @staticmethod
    def _auth(reader: Reader) -> dict[str, str]:
        return {"Authorization": f"Bearer {reader.token.get_secret_value()}"}

    async def account_of(self, client: httpx.AsyncClient, reader: Reader) -> str:
        """The tracked account a token reads, checked with the server once."""
        if reader.part in self.owner:
            return self.owner[reader.part]
        me, _ = await get_json(client, f"{reader.server}/api/v1/accounts/verify_credentials",
                               f"{reader.part} verify_credentials", headers=self._auth(reader))
        actual = str(me.get("id", "")) if isinstance(me, dict) else ""
        expected = (reader.account_id,) if reader.account_id else reader.candidates
        if actual not in expected:
            raise CredentialsRefused(f"the token belongs to account {actual or '?'}, not to "
                                     f"{' or '.join(expected)} of the clients file")
        self.owner[reader.part] = actual
        return actual

    async def read(self, client: httpx.AsyncClient, reader: Reader) -> None:
        if reader.tag is None:
            via = await self.account_of(client, reader)
            url, params, stream = f"{reader.streaming}/api/v1/streaming/user", {}, ["user"]
            source = "stream"
        else:
            via = ""
            url, params, stream = f"{reader.streaming}/api/v1/streaming/hashtag", {"tag": reader.tag}, [
                "hashtag", reader.tag]
            source = f"listen:#{reader.tag}"
        headers = {**self._auth(reader), "Accept": "text/event-stream"}
        async with client.stream("GET", url, params=params, headers=headers) as response:
            await checked_stream(response, f"{reader.part} stream")
            self.status.connected(reader.part)
            # The stream is open (events wait in the socket): now close the gap behind it.
            await self.backfill_all(client, reader, via)
            async for event, data in sse_events(response):
                key, when = event_key(event, data)
                self.status.event(when)
                # One watermark per backfilled timeline: notifications (inbox) apart from statuses.
                mark = self.book.mark(f"{reader.part} {'inbox' if event == 'notification' else source}")
                if key is None or not self.seen[reader.part].add(key):
                    if when is not None:
                        mark.covered(int(when * 1000))
                    continue
                body = orjson.dumps({"stream": stream, "event": event, "payload": data})
                if when is not None:
                    mark.published(int(when * 1000), payload_key(body, self.payload_max))
                    mark.covered(int(when * 1000))
                await self.ctx.outbox.put(PLATFORM, body, source, via)
        raise Retry(f"{reader.part}: the server ended the stream")

    async def backfill_all(self, client: httpx.AsyncClient, reader: Reader, via: str) -> None:
        if reader.tag is not None:
            await self.backfill(client, reader, f"{reader.server}/api/v1/timelines/tag/{reader.tag}",
                                f"listen:#{reader.tag}", "", [f"listen:#{reader.tag}"])
            return
        archive_sources = ["stream", "inbox"]
        await self.backfill(client, reader, f"{reader.server}/api/v1/notifications", "inbox", via, archive_sources)
        await self.backfill(client, reader, f"{reader.server}/api/v1/accounts/{via}/statuses", "stream", via,
                            archive_sources)

    async def backfill(self, client: httpx.AsyncClient, reader: Reader, url: str, source: str, via: str,
                       archive_sources: list[str]) -> int:
        """Page back from the newest item to the reader's contiguous watermark (everything
        published up to it is archived; without one yet, to the first item already kept),
        skipping what is kept above it; publish the rest, oldest first."""
        seen = self.seen[reader.part]
        mark = self.book.mark(f"{reader.part} {source}")
        collected: list[tuple[str, dict[str, Any]]] = []
        newest: int | None = None
        max_id: str | None = None
        for _ in range(self.settings.ingest_backfill_pages):
            params: dict[str, Any] = {"limit": PAGE}
            if max_id is not None:
                params["max_id"] = max_id
            items, _ = await get_json(client, url, f"{reader.part} backfill", params=params,
                                      headers=self._auth(reader))
            if not isinstance(items, list) or not items:
                break
            items = [it for it in items if isinstance(it, dict)]
            keys = [rest_key(it) for it in items]
            archived = await self.ctx.cursors.archived(PLATFORM, archive_sources, ARCHIVE_KEY_SQL,
                                                       [k for k in keys if k not in seen])
            known = False
            for key, item in zip(keys, items, strict=True):
                position = _position(item)
                if position is not None and (newest is None or position > newest):
                    newest = position
                kept = key in seen or key in archived
                if reached(mark, position, kept):
                    known = True
                    break
                if not kept:
                    collected.append((key, item))
            if known or len(items) < PAGE:
                break
            max_id = str(items[-1].get("id", ""))
        for key, item in reversed(collected):
            if seen.add(key):
                self.status.event(epoch_of_iso(item.get("created_at")))
                body = orjson.dumps(item)
                if (position := _position(item)) is not None:
                    mark.published(position, payload_key(body, self.payload_max))
                await self.ctx.outbox.put(PLATFORM, body, source, via)
        if newest is not None:
            mark.covered(newest)
        if collected:
            log.info("mastodon (%s): backfilled %d item(s) from %s", reader.part, len(collected), url)
        return len(collected)
