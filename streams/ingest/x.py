"""`rapport ingest x`: the X API v2 filtered stream -> ``rapport.raw.x``, search to backfill.

Stream rules come from the clients file: per tracked account
``from:<id> OR to:<id> OR retweets_of:<id> OR @<handle>`` (tag ``rapport:account:<id>``),
and per listened query the query itself, tagged with itself so the normalizer can attribute
by ``matching_rules``. The app's rules are made equal to these (``x_replace_rules``; off,
rules are only added). Each stream message (one post with its ``includes`` and
``matching_rules``) is published as received, source ``stream``.

Gaps are closed over recent search each time the stream (re)connects: every rule's query
with ``since_id`` = the agent's contiguous watermark (``<data_dir>/cursors/x.json``: every
post it published with a smaller id is confirmed in ``raw_events``,
streams/ingest/watermark.py; without one yet, the largest post id archived, or before
anything is archived the first id this process published), pages published as received (source
``stream`` for account rules, ``listen:<query>`` for listened ones; posts this process already
published or the archive already holds are left out of a page, the rest of it is kept as
received). Recent search reaches
back seven days: an older cursor is replaced by ``start_time`` at that limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from streams.clients import ClientsFile
from streams.ingest.agent import Retry, Seen, epoch_of_iso, supervise
from streams.ingest.cursors import X_POST_IDS
from streams.ingest.httpio import TRANSIENT, check, checked_stream, get_json, http_client, json_lines
from streams.ingest.publisher import payload_key
from streams.ingest.resume import ResumeBook, resume_path
from streams.ingest.runtime import Context
from streams.limits import payload_max_bytes

log = logging.getLogger("streams.ingest")

PLATFORM = "x"
TAG_PREFIX = "rapport:account:"
TWITTER_EPOCH_MS = 1288834974657
SEARCH_REACH_S = 7 * 86400 - 300  # recent search covers 7 days; keep a margin
FIELDS: dict[str, str] = {
    "tweet.fields": "author_id,conversation_id,created_at,in_reply_to_user_id,referenced_tweets,entities,"
                    "lang,edit_history_tweet_ids",
    "expansions": "author_id,referenced_tweets.id,referenced_tweets.id.author_id,in_reply_to_user_id,"
                  "entities.mentions.username",
    "user.fields": "username,name",
}


@dataclass(frozen=True)
class Rule:
    value: str
    tag: str
    source: str  # where its search backfill is published


def stream_rules(clients: ClientsFile) -> list[Rule]:
    rules: dict[str, Rule] = {}
    for _, acc in clients.accounts():
        if acc.platform != PLATFORM:
            continue
        ident = acc.account_id
        terms = [f"from:{ident}", f"to:{ident}", f"retweets_of:{ident}"]
        handle = acc.handle.strip().lstrip("@")
        if handle:
            terms.append(f"@{handle}")
        value = " OR ".join(terms)
        rules.setdefault(value, Rule(value, f"{TAG_PREFIX}{ident}", "stream"))
        for listen in acc.listen:
            query = listen.strip()
            if query:
                rules.setdefault(query, Rule(query, query, f"listen:{query}"))
    return list(rules.values())


def snowflake_ms(post_id: int) -> int:
    """When an X id was minted (epoch ms)."""
    return (post_id >> 22) + TWITTER_EPOCH_MS


def _post_ids(doc: Any) -> list[str]:
    data = doc.get("data") if isinstance(doc, dict) else None
    items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    return [str(item.get("id")) for item in items if isinstance(item, dict) and item.get("id")]


def _only(doc: dict[str, Any], keep: set[str]) -> bytes:
    """The page with only the posts in ``keep`` (the others were already published); every
    other field, ``includes`` among them, stays as received."""
    data = [p for p in doc.get("data") or [] if isinstance(p, dict) and str(p.get("id")) in keep]
    return orjson.dumps({**doc, "data": data})


class XAgent:
    name = "x"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.status = ctx.status
        self.rules = stream_rules(ctx.clients)
        self.sources = sorted({"stream", *(r.source for r in self.rules)})
        self.seen = Seen()
        self.first_published: int | None = None  # of this process: the resume point before the archive has any
        self.base = self.settings.x_api_url.rstrip("/")
        self.book = ResumeBook(resume_path(self.settings.data_dir, self.name), PLATFORM)
        self.mark = self.book.mark("since_id")
        self.payload_max = payload_max_bytes(self.settings)

    def _auth(self) -> dict[str, str]:
        token = self.settings.x_bearer_token
        assert token is not None, "plan.py starts the X agent only with a bearer token"
        return {"Authorization": f"Bearer {token.get_secret_value()}"}

    async def run(self) -> None:
        async with http_client(self.settings, headers=self._auth()) as client:
            synced = False

            async def session() -> None:
                nonlocal synced
                if not synced:
                    await self.sync_rules(client)
                    synced = True
                await self.read(client)

            keeper = asyncio.create_task(self.book.keep(self.ctx.cursors, self.status, self.settings.spool_confirm_s))
            try:
                await supervise(self.status, self.settings, session, expected=TRANSIENT)
            finally:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)

    async def sync_rules(self, client: httpx.AsyncClient) -> None:
        """Make the app's stream rules those of the clients file."""
        url = f"{self.base}/2/tweets/search/stream/rules"
        doc, _ = await get_json(client, url, "stream rules")
        existing = [r for r in (doc.get("data") or []) if isinstance(r, dict)] if isinstance(doc, dict) else []
        wanted = {r.value: r for r in self.rules}
        have = {str(r.get("value")): r for r in existing}
        stale = [str(r["id"]) for v, r in have.items() if v not in wanted and "id" in r]
        if stale and self.settings.x_replace_rules:
            response = await client.post(url, json={"delete": {"ids": stale}})
            check(response, "delete stream rules", response.content)
            log.info("x: deleted %d stream rule(s) the clients file no longer implies", len(stale))
        missing = [{"value": r.value, "tag": r.tag} for v, r in wanted.items() if v not in have]
        if missing:
            response = await client.post(url, json={"add": missing})
            check(response, "add stream rules", response.content)
            body = orjson.loads(response.content or b"{}")
            for err in body.get("errors") or []:
                if isinstance(err, dict) and err.get("title") != "DuplicateRule":
                    self.status.notes.append(f"x: rule refused: {err.get('value') or ''} {err.get('title') or ''}")
            log.info("x: added %d stream rule(s)", len(missing))

    async def resume_point(self) -> int | None:
        """The contiguous watermark (every post published up to it is archived); without
        one yet (a first run, an upgrade), the largest archived post id."""
        if self.mark.safe is not None:
            self.status.cursor = str(self.mark.safe)
            return self.mark.safe
        archived = await self.ctx.cursors.x_since_id(self.sources)
        self.status.cursor = str(archived or "")
        return archived if archived is not None else (self.first_published - 1 if self.first_published else None)

    async def read(self, client: httpx.AsyncClient) -> None:
        since = await self.resume_point()
        async with client.stream("GET", f"{self.base}/2/tweets/search/stream", params=FIELDS) as response:
            await checked_stream(response, "filtered stream")
            self.status.connected()
            if since is not None:
                await self.backfill(client, since)
            async for line in json_lines(response):
                await self.handle(line)
        raise Retry("the server ended the stream")

    async def handle(self, line: bytes) -> None:
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.status.event()
            await self.ctx.outbox.put(PLATFORM, line, "stream")  # dead-letters with its reason
            return
        ids = _post_ids(doc)
        if not ids:
            errors = doc.get("errors") if isinstance(doc, dict) else None
            if errors:
                # Operational messages (e.g. a disconnect notice) are not payloads.
                self.status.error(f"stream says: {orjson.dumps(errors)[:200].decode()}")
            return
        data = doc.get("data")
        self.status.event(epoch_of_iso(data.get("created_at")) if isinstance(data, dict) else None)
        numeric = [int(i) for i in ids if i.isdigit()]
        if not any(self.seen.add(i) for i in ids):
            if numeric:
                self.mark.covered(max(numeric))
            return
        self._published(ids)
        if numeric:
            self.mark.published(min(numeric), payload_key(line, self.payload_max))
            self.mark.covered(max(numeric))
        await self.ctx.outbox.put(PLATFORM, line, "stream")

    def _published(self, ids: list[str]) -> None:
        numeric = [int(i) for i in ids if i.isdigit()]
        if numeric and self.first_published is None:
            self.first_published = min(numeric)

    async def _unkept(self, ids: list[str]) -> list[str]:
        """The posts of a search page neither published by this process nor archived: the
        watermark lags behind what is archived (it only moves past what is confirmed in
        order), so a search from it finds posts a previous process already had archived."""
        fresh = [i for i in ids if i not in self.seen]
        archived = await self.ctx.cursors.archived(PLATFORM, self.sources, X_POST_IDS, fresh) if fresh else set()
        self.seen.update(archived)
        return [i for i in fresh if i not in archived]

    async def backfill(self, client: httpx.AsyncClient, since_id: int) -> None:
        """Recent search for every rule, newer than ``since_id``; pages as received."""
        params_base: dict[str, Any] = {**FIELDS, "max_results": 100}
        if time.time() * 1000 - snowflake_ms(since_id) < SEARCH_REACH_S * 1000:
            params_base["since_id"] = str(since_id)
        else:
            start = datetime.fromtimestamp(time.time() - SEARCH_REACH_S, tz=UTC)
            params_base["start_time"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        total = 0
        reach = since_id
        for rule in self.rules:
            token: str | None = None
            for _ in range(max(1, self.settings.ingest_backfill_pages)):
                params = {**params_base, "query": rule.value}
                if token:
                    params["next_token"] = token
                response = await client.get(f"{self.base}/2/tweets/search/recent", params=params)
                check(response, f"recent search {rule.tag}", response.content)
                doc = orjson.loads(response.content or b"{}")
                ids = _post_ids(doc)
                reach = max([reach, *(int(i) for i in ids if i.isdigit())])
                fresh = await self._unkept(ids)
                if fresh:
                    self.seen.update(fresh)
                    for _ in fresh:
                        self.status.event()
                    self._published(fresh)
                    body = response.content if len(fresh) == len(ids) else _only(doc, set(fresh))
                    numeric = [int(i) for i in fresh if i.isdigit()]
                    if numeric:  # one record holds the page: archived whole or not at all
                        self.mark.published(min(numeric), payload_key(body, self.payload_max))
                    await self.ctx.outbox.put(PLATFORM, body, rule.source)
                    total += len(fresh)
                token = (doc.get("meta") or {}).get("next_token") if isinstance(doc, dict) else None
                if not token:
                    break
                await asyncio.sleep(0)
        self.mark.covered(reach)  # every rule's search has been read up to here
        if total:
            log.info("x: backfilled %d post(s) since id %s", total, since_id)
