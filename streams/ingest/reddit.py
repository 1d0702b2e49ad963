"""`rapport ingest reddit`: polling Reddit's OAuth API -> ``rapport.raw.reddit``.

Every ``reddit_poll_interval_s``: each tracked account's ``/message/inbox`` and
``/message/mentions`` (with that account's script-app credentials; published with source
``inbox`` and ``via_account`` = the account, since an inbox reply does not name whose
comment it answers), and each listened subreddit's ``/r/<sub>/new`` and
``/r/<sub>/comments`` (source ``listen:r/<sub>``). Things are published one by one as
received (``{"kind", "data"}``), oldest first, each once: de-duplicated by fullname per
source, in memory and, for what memory does not know (after a restart), against the
archive (``raw_events``); a listing whose newest page is all new is paged back until a
known thing, so a gap is closed. Inbox items carry ``dest`` (the recipient), which tells
the accounts' inboxes apart in the archive.

Tokens: ``grant_type=password`` per account (a "script" app), or ``client_credentials``
(app-only) for listening when no account has a password. Quotas: ``X-Ratelimit-Remaining``
and ``-Reset`` are honoured before the quota runs out, 429 with its ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from streams.clients import ClientsFile
from streams.errors import ConfigError
from streams.ingest.agent import CredentialsRefused, RateLimited, Retry, Seen, supervise
from streams.ingest.httpio import TRANSIENT, check, get_json, http_client
from streams.ingest.publisher import payload_key
from streams.ingest.resume import ResumeBook, reached, resume_path
from streams.ingest.runtime import Context
from streams.limits import payload_max_bytes
from streams.settings import Settings

log = logging.getLogger("streams.ingest")

PLATFORM = "reddit"
PAGE = 100
NAME_SQL = "JSONExtractString(payload, 'data', 'name')"
# Inbox items name their recipient; items without ``dest`` count for every inbox.
DEST_SQL = "lower(JSONExtractString(payload, 'data', 'dest')) IN ('', {dest:String})"


@dataclass
class Token:
    """An OAuth token for one set of credentials (an account, or the app alone)."""

    username: str | None
    password: SecretStr | None
    value: str = ""
    expires_at: float = 0.0

    @property
    def label(self) -> str:
        return f"u/{self.username}" if self.username else "app-only"


@dataclass
class Listing:
    """One listing to poll: where, as what source, for which account."""

    path: str  # e.g. /message/inbox or /r/acme/new
    source: str
    via: str
    token: Token
    primed: bool = False  # polled once since start: later gaps are bounded by the poll interval
    seen: Seen = field(default_factory=lambda: Seen(20_000))
    resume_at: float = 0.0  # a listing refused (private, banned, gone) rests until then


def plan_listings(settings: Settings, clients: ClientsFile) -> tuple[list[Listing], list[str]]:
    notes: list[str] = []
    passwords = {k.lower(): v for k, v in settings.reddit_passwords.items()}
    if settings.reddit_username and settings.reddit_password is not None:
        passwords.setdefault(settings.reddit_username.lower(), settings.reddit_password)
    tokens: dict[str, Token] = {}
    listings: list[Listing] = []
    seen: dict[str, Seen] = {}  # one per source and account: inbox and mentions overlap
    subs: dict[str, Token | None] = {}
    for _, acc in clients.accounts():
        if acc.platform != PLATFORM:
            continue
        user = acc.account_id
        password = passwords.get(user.lower())
        token = None
        if password is None:
            notes.append(f"reddit: no password for u/{user} (RAPPORT_REDDIT_PASSWORDS); its inbox is not polled")
        else:
            token = tokens.setdefault(user.lower(), Token(user, password))
            if f"inbox|{user}" not in seen:
                shared = seen[f"inbox|{user}"] = Seen(20_000)
                listings += [Listing("/message/inbox", "inbox", user, token, seen=shared),
                             Listing("/message/mentions", "inbox", user, token, seen=shared)]
        for src in acc.listen:
            sub = src.strip().lower().removeprefix("/").removeprefix("r/").strip("/")
            if sub:
                subs[sub] = subs.get(sub) or token
    app_only: Token | None = None
    for sub, sub_token in sorted(subs.items()):
        if sub_token is None:
            sub_token = next(iter(tokens.values()), None)
        if sub_token is None:
            app_only = app_only or Token(None, None)
            sub_token = app_only
        source = f"listen:r/{sub}"
        shared = Seen(20_000)
        listings += [Listing(f"/r/{sub}/new", source, "", sub_token, seen=shared),
                     Listing(f"/r/{sub}/comments", source, "", sub_token, seen=shared)]
    return listings, notes


class RedditAgent:
    name = "reddit"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.status = ctx.status
        self.listings, notes = plan_listings(ctx.settings, ctx.clients)
        for note in notes:
            if note not in self.status.notes:
                self.status.notes.append(note)
        self.quota_reset_at = 0.0
        self.book = ResumeBook(resume_path(self.settings.data_dir, self.name), PLATFORM)
        self.payload_max = payload_max_bytes(self.settings)

    async def run(self) -> None:
        if not self.listings:
            raise ConfigError("reddit: nothing to poll (no account with a password, no listened subreddit)")
        keeper = asyncio.create_task(self.book.keep(self.ctx.cursors, self.status, self.settings.spool_confirm_s))
        try:
            await self._run()
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)

    async def _run(self) -> None:
        async with http_client(self.settings, headers={"User-Agent": self.settings.reddit_user_agent}) as client:

            async def session() -> None:
                while True:
                    for listing in self.listings:
                        if listing.resume_at <= time.time():
                            await self.poll_isolated(client, listing)
                    self.status.connected()
                    await asyncio.sleep(self.settings.reddit_poll_interval_s)

            await supervise(self.status, self.settings, session, expected=TRANSIENT)

    async def token(self, client: httpx.AsyncClient, token: Token) -> str:
        if token.value and time.time() < token.expires_at - 60:
            return token.value
        secret = self.settings.reddit_client_secret
        assert self.settings.reddit_client_id and secret is not None, "plan.py checks the app credentials"
        if token.username and token.password is not None:
            data = {"grant_type": "password", "username": token.username,
                    "password": token.password.get_secret_value()}
        else:
            data = {"grant_type": "client_credentials"}
        response = await client.post(f"{self.settings.reddit_auth_url.rstrip('/')}/api/v1/access_token",
                                     data=data, auth=(self.settings.reddit_client_id, secret.get_secret_value()))
        check(response, f"access token for {token.label}", b"")
        body = orjson.loads(response.content or b"{}")
        if not isinstance(body, dict) or not body.get("access_token"):
            error = body.get("error") if isinstance(body, dict) else None
            raise CredentialsRefused(f"access token for {token.label}: {error or 'no token in the answer'}")
        token.value = str(body["access_token"])
        token.expires_at = time.time() + float(body.get("expires_in") or 3600)
        return token.value

    async def _get(self, client: httpx.AsyncClient, listing: Listing, params: dict[str, Any]) -> Any:
        wait = self.quota_reset_at - time.time()
        if wait > 0:
            self.status.error(f"quota used up; waiting {wait:.0f}s for it to reset")
            await asyncio.sleep(min(wait, self.settings.ingest_max_wait_s))
        bearer = await self.token(client, listing.token)
        url = f"{self.settings.reddit_api_url.rstrip('/')}{listing.path}"
        try:
            doc, response = await get_json(client, url, listing.path, params=params,
                                           headers={"Authorization": f"bearer {bearer}"})
        except CredentialsRefused:
            listing.token.value = ""  # expired or revoked: a new one next time
            raise
        remaining, reset = response.headers.get("x-ratelimit-remaining"), response.headers.get("x-ratelimit-reset")
        try:
            if remaining is not None and reset is not None and float(remaining) < 1:
                self.quota_reset_at = time.time() + float(reset)
        except ValueError:
            pass
        return doc

    async def poll_isolated(self, client: httpx.AsyncClient, listing: Listing) -> None:
        """Poll one listing; one that refuses us (a private, banned or gone subreddit: 403,
        404) rests alone instead of stopping the others. Quotas, refused tokens (401) and
        transport or server failures stop the round, which the supervisor retries."""
        try:
            await self.poll(client, listing)
        except RateLimited:
            raise
        except Retry as exc:
            if exc.status not in (403, 404, 451):
                raise
            self._rest(listing, exc.reason)

    def _rest(self, listing: Listing, why: str) -> None:
        listing.resume_at = time.time() + self.settings.ingest_backoff_max_s
        self.status.error(f"{listing.path}: {why}; retried in {self.settings.ingest_backoff_max_s:.0f}s")
        log.warning("reddit: %s: %s; the other listings go on", listing.path, why)

    async def poll(self, client: httpx.AsyncClient, listing: Listing) -> int:
        """Publish what is new in ``listing``; page back until a page reaches the listing's
        contiguous watermark (streams/ingest/watermark.py: everything published up to it is
        archived), skipping what is kept; without a watermark yet, a page holding a kept item."""
        mark = self.book.mark(f"{listing.source} {listing.via} {listing.path}")
        collected: list[tuple[str, dict[str, Any]]] = []
        newest: int | None = None
        after: str | None = None
        pages = max(1, self.settings.ingest_backfill_pages) if not listing.primed else 2
        for _ in range(pages):
            params: dict[str, Any] = {"limit": PAGE, "raw_json": 1}
            if after:
                params["after"] = after
            doc = await self._get(client, listing, params)
            children = _children(doc)
            if children is None:
                raise Retry(f"{listing.path}: not a listing")
            names = [str(c.get("data", {}).get("name", "")) for c in children]
            unknown = [n for n in names if n and n not in listing.seen]
            archived = await self._archived(listing, unknown)
            known = False
            for name, child in zip(names, children, strict=True):
                if not name:
                    continue
                position = _position(child)
                if position is not None and (newest is None or position > newest):
                    newest = position
                kept = name in listing.seen or name in archived
                if kept:
                    listing.seen.add(name)
                # The rest of this page is still read (a late item may sit below a kept one);
                # paging back stops after it.
                known = reached(mark, position, kept) or known
                if not kept:
                    collected.append((name, child))
            after = (doc.get("data") or {}).get("after") if isinstance(doc, dict) else None
            if known or not after or len(children) < PAGE:
                break
        listing.primed = True
        for name, child in reversed(collected):
            if listing.seen.add(name):
                created = child.get("data", {}).get("created_utc")
                self.status.event(float(created) if isinstance(created, int | float) else None)
                body = orjson.dumps(child)
                if (position := _position(child)) is not None:
                    mark.published(position, payload_key(body, self.payload_max))
                await self.ctx.outbox.put(PLATFORM, body, listing.source, listing.via)
        if newest is not None:
            mark.covered(newest)
        return len(collected)

    async def _archived(self, listing: Listing, names: list[str]) -> set[str]:
        if not names:
            return set()
        if listing.source == "inbox":
            return await self.ctx.cursors.archived(PLATFORM, ["inbox"], NAME_SQL, names, where=DEST_SQL,
                                                   dest=listing.via.lower())
        return await self.ctx.cursors.archived(PLATFORM, [listing.source], NAME_SQL, names)


def _position(child: dict[str, Any]) -> int | None:
    """A listing item's place in its listing: its creation time (ms)."""
    created = child.get("data", {}).get("created_utc") if isinstance(child.get("data"), dict) else None
    if isinstance(created, int | float) and not isinstance(created, bool):
        return int(created * 1000)
    return None


def _children(doc: Any) -> list[dict[str, Any]] | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        return None
    children = doc["data"].get("children")
    if not isinstance(children, list):
        return None
    return [c for c in children if isinstance(c, dict) and isinstance(c.get("data"), dict)]

